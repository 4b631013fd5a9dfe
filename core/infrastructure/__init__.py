"""How processes connect and report: settings, Temporal client and converter, payload codec, local stack, logs, metrics, tracing, outbound HTTP."""
