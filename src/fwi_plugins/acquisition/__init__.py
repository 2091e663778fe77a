"""Acquisition mapping: any 2-D surface survey onto a model's native acquisition, and back.

A network trained on OpenFWI reads gathers of one acquisition only (70 receivers one per
10 m column, 5 surface shots evenly spread, 1000 samples at 1 ms, a 15 Hz Ricker) and
predicts a 70 x 70 map at 10 m. :class:`AcquisitionMap` plans how a user's survey (any
number and position of shots and receivers, any sampling and length, any output grid)
is read through that window, and maps the prediction back onto the user's grid.

**What scales.** The constant-density acoustic wave equation is unchanged when space and
time are stretched by the same factor ``a`` at the same velocities: a survey in which
every distance and every time is ``a`` times the native one, with a wavelet ``a`` times
slower (peak frequency divided by ``a``), records exactly the native wavefield, ``a``
times stretched. Grid spacing by itself is not part of that physics: a 20 m grid is only
how finely the answer is wanted; a 15 Hz survey on it is the same physics as the native
one at ``a = 1``. Stretching space without time (resampling a 20 m grid to 10 m cells and
keeping seconds) would halve every apparent velocity. So the map chooses ``a`` from the
wavelet, ``a = f_native / f_survey`` (the network then sees the wavelet it was trained
on), and moves it only as far as the survey forces:

* the native depth, ``a x 690 m``, must reach the bottom of the user's grid (``a`` up);
* the native recording, ``a x 1 s`` after the wavelet's peak, must fit in the user's
  recording (``a`` down), or the deepest part of the grid is unseen;
* the native line, ``a x 690 m`` of receivers, must fit in the user's receiver line
  (``a`` down); wider lines are read in overlapping windows and blended.

No ``a`` satisfies all three: the survey cannot be mapped, and :class:`AcquisitionMap`
says which requirement fails. Velocities are never scaled. Amplitudes are left as
recorded (the mapping is linear); a scale far from the trained wavelet's frequency is
warned about, since the network then sees a wavelet band it was not trained on.

**How.** Time is resampled with a Kaiser-windowed sinc (anti-aliased: the cut-off is the
lower of the two Nyquist frequencies, times ``rolloff``), stretched by ``a`` and shifted
so the wavelet's peak lands where the network expects it. Receivers are interpolated
linearly along the line. Each native shot is taken from the user's shots beside it in
the common-offset domain (a shot at the same position is used as it is; between two shots
the gathers are blended by distance at equal offsets; a shot a little off the end of the
user's shots is borrowed from the nearest one). The prediction of each window is
interpolated bilinearly onto the user's grid and windows are blended with triangular
weights that fall to zero at their edges.

Nothing here imports torch; :func:`predict_on_survey` runs a network through the map.

The parts: :mod:`.map_ends` (the grid wanted, a network's native survey, a survey from
coordinates), :mod:`.resampling` (the interpolation operators), :mod:`.mapping` (the plan,
:class:`AcquisitionMap`) and :mod:`.mapped_prediction` (a network run through it).
"""

from __future__ import annotations

from .mapped_prediction import mapped_gathers, predict_on_survey, predict_through_map
from .mapping import FREQUENCY_TOLERANCE, AcquisitionMap
from .resampling import resample_matrix
from .map_ends import Grid, native_survey, survey_from_coordinates

__all__ = ["FREQUENCY_TOLERANCE", "AcquisitionMap", "Grid", "mapped_gathers", "native_survey", "predict_on_survey",
           "predict_through_map", "resample_matrix", "survey_from_coordinates"]
