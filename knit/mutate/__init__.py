"""Mutation score (`knit mutate`): how many deliberately broken TOA, TIPC and MPTCP
variants the suites catch.

    catalog   kernels/mutants/<suite>/<id>.toml: loading, validation, applying a pattern
    tree      the base source trees and the mutated copies
    build     a mutant built into what its suite swaps in (module, BPF object, kernel)
    run       the pytest selection against it
    verdict   killed / survived / invalid from the outcomes
    store     the resumable results file
    report    the kill matrix (JSON, HTML) and the summary
    engine    the loop over the catalogue
    cli       `knit mutate`
"""
