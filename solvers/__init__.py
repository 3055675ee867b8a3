"""Fast constrained sampling with inexact Newton steps (Graikos, Jojic & Samaras, 2024).

The numerical core: pure torch, no knowledge of diffusers, images or files. Backends adapt their
models to the denoiser contract ``x0_hat(x_t, t)``; solvers only call it. NaN/Inf met while
solving raises :class:`NonFiniteError` (a :class:`FloatingPointError`) naming where it happened.
"""

from .directions import DIRECTIONS, Direction, get_direction, gradient, newton
from .errors import NonFiniteError
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
from .sampler import SampleOutput, sample
from .schedules import dynamic_step, step_sizes
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
    "JacobianProducts",
    "JacobianSpectrum",
    "NonFiniteError",
    "RefineOutput",
    "SampleOutput",
    "add_noise",
    "arnoldi",
    "asymmetry",
    "dynamic_step",
    "get_direction",
    "gradient",
    "jacobian_matrix",
    "jacobian_spectrum",
    "newton",
    "output_from_x0",
    "refine",
    "sample",
    "scheduler_prediction_type",
    "step_sizes",
    "x0_from_output",
]
