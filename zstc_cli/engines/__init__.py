"""Engines run the read → plan → score → write flow: ``local`` in this process, ``ray`` on a cluster."""
