"""Evaluation as a library: pair sources (bags, raw or compressed, and image folders), scoring, the live run
through the real node, and the HTML report. ``psfusion-eval`` is a thin command line over it; training
(``--eval-every``, ``--bag``) and the automatic calibration's bag mode use the same code."""
