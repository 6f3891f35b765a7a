"""The throughput benchmark (`pkcs11-conformance bench`, `bench-gate`): how fast each mechanism runs on a vendor
under each session strategy and thread count. The pipeline, one module per job:

    cli ─► runner (vendors, provisioning, rounds; a crash or hang is a row) ─► worker program (the module's process:
    workloads × strategies, timed trials) ─► record (bench.json) ─► html (bench.html) / compare (bench-gate)
"""
