"""Parses cxlake's OpenLineage events with the openlineage-python client's own models and prints,
as JSON, what they say: each event rebuilt as a RunEvent (whose validators check the event time,
the run id as a UUID, the producer and schema URLs) with its facets as the client's facet
classes, then serialised back by the client.

Usage: openlineage_events.py EVENTS_FILE   (one JSON event per line)
"""
import json
import os
import sys

from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.generated.error_message_run import ErrorMessageRunFacet
from openlineage.client.generated.job_type_job import JobTypeJobFacet
from openlineage.client.generated.output_statistics_output_dataset import OutputStatisticsOutputDatasetFacet
from openlineage.client.generated.schema_dataset import SchemaDatasetFacet, SchemaDatasetFacetFields
from openlineage.client.serde import Serde


def facet_args(raw):
    """A facet's own fields (its `_producer` and `_schemaURL` are the client's to set)."""
    return {k: v for k, v in raw.items() if not k.startswith("_")}


def rebuild(raw):
    run_facets = {}
    if "errorMessage" in raw["run"].get("facets", {}):
        run_facets["errorMessage"] = ErrorMessageRunFacet(**facet_args(raw["run"]["facets"]["errorMessage"]))
    job_facets = {}
    if "jobType" in raw["job"].get("facets", {}):
        job_facets["jobType"] = JobTypeJobFacet(**facet_args(raw["job"]["facets"]["jobType"]))
    outputs = []
    for out in raw.get("outputs", []):
        schema = out["facets"]["schema"]
        facets = {"schema": SchemaDatasetFacet(fields=[SchemaDatasetFacetFields(**f) for f in schema["fields"]])}
        output_facets = {}
        if "outputStatistics" in out.get("outputFacets", {}):
            output_facets["outputStatistics"] = OutputStatisticsOutputDatasetFacet(
                **facet_args(out["outputFacets"]["outputStatistics"])
            )
        outputs.append(OutputDataset(namespace=out["namespace"], name=out["name"], facets=facets, outputFacets=output_facets))
    return RunEvent(
        eventType=RunState[raw["eventType"]],
        eventTime=raw["eventTime"],
        run=Run(runId=raw["run"]["runId"], facets=run_facets),
        job=Job(namespace=raw["job"]["namespace"], name=raw["job"]["name"], facets=job_facets),
        inputs=[InputDataset(namespace=i["namespace"], name=i["name"]) for i in raw.get("inputs", [])],
        outputs=outputs,
        producer=raw["producer"],
    )


events = []
with open(sys.argv[1]) as f:
    for line in f:
        if line.strip():
            events.append(json.loads(Serde.to_json(rebuild(json.loads(line)))))
print(json.dumps(events))
sys.stdout.flush()
os._exit(0)
