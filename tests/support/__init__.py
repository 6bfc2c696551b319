"""Test infrastructure shared by the fastsio suites: peer servers and the fault-injection proxy.

conftest.py puts tests/ on sys.path, so test modules import these as ``support.servers`` and
``support.faultproxy`` (pytest runs in importlib mode, which does not add rootdirs itself).
"""
