"""`crm worker automations` as a process of its own, to be killed (tests/e2e)."""

from __future__ import annotations

import asyncio
import sys

from tests.support.campaigns import ROOT, CampaignWorkerProcess


class AutomationWorkerProcess(CampaignWorkerProcess):
    """The same handling as the campaign worker's process (kill, stop, log), another worker."""

    async def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                "from adapters.cli import main; main()",
                "worker",
                "automations",
                cwd=ROOT,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
