"""Reading a gradio_client job's streamed outputs (shared by the app's API tests)."""

import time


def stream(job, until=None, timeout: float = 300):
    """Collect a job's streamed outputs (optionally stop waiting once `until(output)`)."""
    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        outputs = job.outputs()
        if len(outputs) > len(seen):
            seen = list(outputs)
            if until and until(seen[-1]):
                return seen
        if job.done():
            return list(job.outputs())
        time.sleep(0.1)
    raise AssertionError(f"the job did not finish in {timeout} s; last: {seen[-1:]}")
