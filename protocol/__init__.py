"""The device wire protocol (docs/PROTOCOL.md section 2): topics, payload models, decoding
with reasons for refusal, and what the ingest tells the alert engine as messages arrive."""
