"""Training PSFusion: dataset and derived targets, the paper's losses, the schedule, the (distributed) loop.

The command line is ``psfusion-train`` (:mod:`psfusion_ros.train.cli`); ``python -m psfusion_ros.train`` and
``torchrun -m psfusion_ros.train`` run the same.
"""
