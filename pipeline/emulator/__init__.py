"""A local emulator of the Telestream UP workflow-jobs API, for the demo, the tests and benchmarks."""

from pipeline.emulator.faults import FaultPlan
from pipeline.emulator.generator import generate_jobs
from pipeline.emulator.server import EmulatorServer, JobStore

__all__ = ["EmulatorServer", "FaultPlan", "JobStore", "generate_jobs"]
