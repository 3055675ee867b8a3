"""Fast constrained sampling with inexact Newton steps (Graikos, Jojic & Samaras, 2024).

The numerical core: pure torch, no knowledge of diffusers, images or files. Backends adapt their
models to the denoiser contract ``x0_hat(x_t, t)``; solvers only call it. NaN/Inf met while
solving raises :class:`NonFiniteError` (a :class:`FloatingPointError`) naming where it happened.
The options are frozen dataclasses: :class:`RefineOptions` (the inner loop: K, direction, λ as a
:class:`Schedule`, δ0…) inside :class:`SampleOptions` (steps, restarts, η)::

    out = solvers.sample(denoiser, constraint, x_t, SampleOptions(refine=RefineOptions(iters=5)))
"""

from .directions import DIRECTIONS, Direction, get_direction, gradient, newton
from .errors import FiniteGuard, NonFiniteError
from .options import RefineOptions, SampleOptions
from .parameterization import (
    PREDICTION_TYPES,
    Denoiser,
    DenoiserFn,
    add_noise,
    output_from_x0,
    scheduler_prediction_type,
    x0_from_output,
)
from .refine import ConstraintFn, RefineOutput, refine
from .sampler import SampleOutput, initial_noise, sample
from .schedules import Schedule, dynamic_step
from .spectrum import (
    ArnoldiResult,
    JacobianProducts,
    JacobianSpectrum,
    arnoldi,
    asymmetry,
    jacobian_matrix,
    jacobian_spectrum,
)

__all__ = [
    "DIRECTIONS",
    "PREDICTION_TYPES",
    "ArnoldiResult",
    "ConstraintFn",
    "Denoiser",
    "DenoiserFn",
    "Direction",
    "FiniteGuard",
    "JacobianProducts",
    "JacobianSpectrum",
    "NonFiniteError",
    "RefineOptions",
    "RefineOutput",
    "SampleOptions",
    "SampleOutput",
    "Schedule",
    "add_noise",
    "arnoldi",
    "asymmetry",
    "dynamic_step",
    "get_direction",
    "gradient",
    "initial_noise",
    "jacobian_matrix",
    "jacobian_spectrum",
    "newton",
    "output_from_x0",
    "refine",
    "sample",
    "scheduler_prediction_type",
    "x0_from_output",
]
