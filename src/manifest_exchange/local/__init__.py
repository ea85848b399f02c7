"""Local-only tooling: the embedded SeaweedFS stack, a local Prefect server and worker, the alert
receiver that stands in for a webhook, and the synthetic manifest generator.

The production path (ingest, quality, transform, publish, runs, flows) never imports this
package; ``tests/test_contract.py`` checks it.
"""
