"""Reports for SLIDE Bench, read from MLflow only (never from the harness's objects).

    python -m reports {figure3,iterations,table,scaling,sublinear,retrieval,sparsity_tradeoff,all}
        --experiment NAME
    python -m reports figure3 --experiment NAME [--sweep-id ID] [--out DIR]   (same for every report)

reports.load: MLflow -> tidy pandas tables; reports.table: time-to-accuracy maths and table;
reports.table_markdown: its CSV / markdown files; reports.figure3, .iterations, .scaling,
.sublinear, .retrieval, .sparsity_tradeoff: one figure each (reports.plots lists them), drawn
with reports.style (colours, markers, notes panel) and reports.labels (titles, legend labels);
reports.build: load once, write many; reports.callback: a Hydra callback writing the reports
of a -m sweep into its folder and logging them to MLflow.
"""
