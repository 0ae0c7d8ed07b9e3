"""Names shared by the pipeline, the views' readers and the alerts (one home, no heavy imports).

``pipeline.analytics`` is imported by notebooks: it must not pull in dlt just for a schema name.
"""

DATASET_NAME = "telestream_up"
"""The schema (dataset) every table and view lives in."""
PIPELINE_NAME = "up_jobs"
