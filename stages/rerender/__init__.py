"""``rerender``: ReCamMaster video-to-video camera re-rendering on Wan2.1 (docs/method.md#recammaster).

:mod:`.cameras` turns camera paths into ReCamMaster's camera input (and holds its ten published
trajectories and the MultiCamVideo camera format); :mod:`.pipeline` is the stage.
"""

from .pipeline import RerenderResult, regenerate, rerender

__all__ = ["RerenderResult", "regenerate", "rerender"]
