"""Code that trips every bandit test, for comparing the security scan with bandit itself.

Kept as strings: the project's own lint never reads them as code.
"""

from __future__ import annotations

CORPUS: dict[str, str] = {
    "app/general.py": """\
import os
import stat
import socket
import requests
import tarfile
import tempfile
import hashlib
import ssl
import yaml
import jinja2
import paramiko
from flask import Flask


def general(user_input, user_data, password="hunter2hunter2"):
    assert user_input
    exec(user_input)
    os.chmod("/etc/passwd", 0o777)
    os.chmod("/tmp/file", 0o750)
    os.chmod("/tmp/file2", stat.S_IRWXU)
    s = socket.socket()
    s.bind(("0.0.0.0", 80))
    secret = "s3cr3t-value"
    connect(password="hunter2hunter2")
    f = open("/tmp/scratch.txt", "w")
    try:
        f.write("x")
    except Exception:
        pass
    for i in range(3):
        try:
            f.write("y")
        except Exception:
            continue
    requests.get("https://example.com")
    requests.get("https://example.com", verify=False, timeout=5)
    app = Flask(__name__)
    app.run(debug=True)
    tar = tarfile.open("x.tar")
    tar.extractall()
    tar.extractall(members=[])
    hashlib.md5(b"x")
    hashlib.sha1(b"x", usedforsecurity=False)
    hashlib.new("md5")
    ssl.wrap_socket(s, ssl_version=ssl.PROTOCOL_SSLv2)
    ssl.wrap_socket(s)
    yaml.load(user_data)
    jinja2.Environment(autoescape=False)
    jinja2.Environment()
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.exec_command("ls " + user_input)
    return f
""",
    "app/blacklist.py": """\
import pickle
import marshal
import random
import telnetlib
import ftplib
import xml.etree.ElementTree as ET
import xml.sax
import xml.dom.minidom
import xml.dom.pulldom
import xml.dom.expatbuilder
import xmlrpc.client
import urllib.request
import tempfile
from Crypto.Cipher import ARC4
from Crypto.Hash import MD5
from cryptography.hazmat.primitives.ciphers import modes, algorithms, Cipher
from cryptography.hazmat.primitives.asymmetric import rsa, dsa, ec
from django.utils.safestring import mark_safe
from wsgiref.handlers import CGIHandler
import pyghmi


def calls(data, url, text):
    pickle.loads(data)
    marshal.loads(data)
    MD5.new()
    ARC4.new(b"key")
    Cipher(algorithms.AES(b"k" * 16), modes.ECB())
    tempfile.mktemp()
    eval(text)
    mark_safe(text)
    mark_safe("<b>literal</b>")
    urllib.request.urlopen(url)
    random.random()
    telnetlib.Telnet("host")
    ET.fromstring(data)
    xml.sax.parseString(data, None)
    xml.dom.minidom.parseString(data)
    xml.dom.pulldom.parseString(data)
    ftplib.FTP("host")
    import ssl
    ssl._create_unverified_context()
    rsa.generate_private_key(public_exponent=65537, key_size=1024)
    rsa.generate_private_key(public_exponent=65537, key_size=512)
    dsa.generate_private_key(key_size=1024)
    ec.generate_private_key(ec.SECP192R1())
""",
    "app/shell.py": """\
import os
import subprocess
import logging.config
from pysnmp.hlapi import CommunityData, UsmUserData


def shells(cmd, name, user_id):
    subprocess.call(cmd, shell=True)
    subprocess.call("ls -l", shell=True)
    subprocess.Popen(["ls", cmd])
    subprocess.Popen("ls")
    os.system(cmd)
    os.system("ls")
    os.popen(cmd)
    os.execl("/bin/ls", "ls")
    os.spawnl(os.P_WAIT, "ls", "ls")
    subprocess.Popen(["ls"])
    some_function(cmd, shell=True)
    query = "SELECT * FROM users WHERE name = '%s'" % name
    query2 = f"DELETE FROM users WHERE id = {user_id}"
    os.system("chmod +x *")
    subprocess.call("tar cf backup.tar *", shell=True)
    logging.config.listen(9999)
    CommunityData("public", mpModel=0)
    UsmUserData("securityName")
    return query, query2
""",
    "app/web.py": """\
from django.db.models.expressions import RawSQL
from mako.template import Template
from markupsafe import Markup
import torch
from transformers import AutoModel
from huggingface_hub import hf_hub_download


def web(qs, user_input, path):
    qs.extra(where=["id = %s" % user_input])
    RawSQL("select * from t where id = %s" % user_input, [])
    Template("hello ${name}")
    Markup(user_input)
    torch.load(path)
    AutoModel.from_pretrained("bert-base-uncased")
    hf_hub_download(repo_id="org/model", filename="x.bin")
""",
    "app/trojan.py": (
        'access_level = "user"\n'
        'if access_level != "none\u202e\u2066":  # Check if admin\u2069\u2066\n'
        '    print("admin")\n'
    ),
    "app/tests/test_x.py": "def test_it():\n    assert 1 + 1 == 2\n",
}
