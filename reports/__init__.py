"""Reports for SLIDE Bench, read from MLflow only (never from the harness's objects).

    python -m reports {REPORT,all}   (python -m reports --help lists them: reports.build.REPORTS)
        --experiment NAME [--sweep-id ID] [--out DIR]

Modules, imports going one way: entry points -> figures -> style and table -> load (the
entry points __main__ and callback use build; nothing else imports an entry point).

- reports.load: MLflow -> tidy pandas tables (runs, histories) and the selections every report
  makes of them (finished runs, SLIDE runs, eval points). The only module that talks to MLflow
  for reading.
- reports.table: every table: time to accuracy (maths, CSV, markdown, the headline speed-ups)
  and the sparsity trade-off's points.
- reports.style: the look and words of every figure (colours, markers, legend labels, the notes
  panel listing runs without a curve, saving PNG + SVG).
- reports.figures: one function per figure.
- Entry points: reports.build (load once, write many), reports.__main__ (the CLI) and
  reports.sweep_end (a Hydra callback writing the reports of a -m sweep into its folder and
  logging them to the sweep's MLflow run).
"""
