"""drgn-mmtools on /proc/kcore: an x86_64 guest runs the host's Python over 9p.

The guest mounts the host's root read-only, chroots into it with its own
/proc, and runs ``drgn-mmtools check --live``; the JSON report comes back on
the serial console and must match the guest's recorded truth.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from fixtures import lab
from fixtures.arches import ARCHES

from .livecheck import assert_guest_findings

pytestmark = pytest.mark.live
ROOT = Path(__file__).resolve().parent.parent


def test_check_on_proc_kcore_inside_the_guest(tmp_path):
    arch = ARCHES["x86_64"]
    if shutil.which(arch.qemu) is None:
        pytest.fail(f"{arch.qemu} is not installed")
    d = lab.arch_dir(arch)
    job = tmp_path / "job.sh"
    job.write_text(f"""cd {ROOT}
{sys.executable} -m drgn_mmtools check --live --vmlinux {d / 'vmlinux.debug'} \\
    --module {d / 'mmfixture.ko'} --format json --output /run/report.json 2>/run/stderr
status=$?
echo MMKCORE-BEGIN
cat /run/report.json
echo "MMKCORE-END $status"
cat /run/stderr
""")
    guest = lab.boot_shipped(arch, "bugs", tmp_path / "guest", share=Path("/"),
                             extra_append=f"mmjob={job}", memory_mib=1024)
    try:
        guest.wait_ready(timeout=900)
        m = guest.wait_for(r"^MMKCORE-BEGIN\r?\n(.*)^MMKCORE-END (\d+)", timeout=1800)
    finally:
        guest.stop()
    assert int(m.group(2)) == 1, "findings expected: exit status 1"
    doc = json.loads(m.group(1).replace("\r", ""))
    assert doc["target"]["live"] is True
    assert doc["target"]["description"] == "the running kernel"
    assert_guest_findings({c["check"]: c for c in doc["checks"]}, guest.truth)
