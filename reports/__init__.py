"""Reports for SLIDE Bench, read from MLflow only (never from the harness's objects).

    python -m reports {figure3,iterations,table,scaling,sublinear,all} --experiment NAME
    python -m reports.figure3 --experiment NAME [--sweep-id ID] [--out DIR]

reports.load: MLflow -> tidy pandas tables; reports.table: time-to-accuracy table;
reports.plots: the figures; reports.build: load once, write many; reports.callback: a Hydra
callback writing the reports of a -m sweep into its folder and logging them to MLflow.
"""
