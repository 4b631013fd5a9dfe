"""The API's request and response bodies, one module per resource.

Routers import from the resource's module (`from api.schemas.runs import RunCreate`).
`fields` holds the types every body uses to refuse, at the edge, values the layers behind
the API cannot hold; `common` what several resources share.
"""
