"""Developer tooling: benchmarks (`studio bench`), the soak (`studio soak`), stall probes,
the tokenizer maker. Nothing here is imported by the studio itself."""
