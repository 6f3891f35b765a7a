"""A --sut module that fails at import with a two-line message (tests/corpus/suts.txt): the harness must say so in
one line."""

raise RuntimeError("this pool needs POOL_URL\nset it to the pool's address, e.g. POOL_URL=tcp://hsm:1500")
