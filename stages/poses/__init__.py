"""``poses``: metric camera annotation of unposed, dynamic videos (CameraCtrl II's data pipeline,
docs/method.md#poses-of-dynamic-videos).

:mod:`.sfm` estimates the cameras with motion masks (and holds the geometric motion masks);
:mod:`.checks` rejects fragmented and shaky trajectories, labels trajectory types and balances
them; :mod:`.pipeline` is the stage.
"""
