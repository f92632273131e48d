"""Start-up hook of a test's subprocess driver (on its PYTHONPATH via ``task_gate.gate_env``):
gate the launcher's pack task when ``INAL_TEST_GATE`` is set (see ``tests/task_gate.py``)."""

import task_gate

task_gate.install_from_environment()
