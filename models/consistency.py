"""The sampler of a step-distilled (consistency) video model: AnimateLCM-SVD-xt's, written here.

    scheduler = ConsistencySampler()           # the published settings
    scheduler.set_noise_generator(generator)   # the job's seeded generator: same seed, same clip
    pipe.scheduler = scheduler                  # diffusers' SVD loop calls the three methods below

The model was distilled on 40 Karras noise levels (EDM, arXiv 2206.00364) between sigma_min and
sigma_max. Sampling N steps visits every (40 // N)-th of them from the noisiest, and at each one:
1. the UNet sees x / sqrt(sigma^2 + sigma_data^2) and the time input t = ln(sigma) / 4
   (`scale_model_input`, `timesteps`; the same inputs SVD itself was trained with);
2. `step` makes the consistency prediction of the clean latents,
   x0 = c_skip(sigma) * x + c_out(sigma) * F, with c_skip = sigma_data^2 / (sigma^2 + sigma_data^2)
   and c_out = -sigma * sigma_data / sqrt(sigma^2 + sigma_data^2) (SVD's v-prediction scalings);
3. and noises it again to the next level, x = x0 + sigma_next * z (sigma_next = 0 after the last).
Every z comes from the generator set with `set_noise_generator` (the reference sampler draws
from torch's global generator, so a seed there does not give the same clip twice), or, while one
is set with `set_noise_source`, from a source that drew them ahead from that same generator
(models/noise.py).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor


# (shape, dtype, device) -> the next draw, or None when the source has stood down
NoiseSource = Callable[[tuple[int, ...], torch.dtype, Any], torch.Tensor | None]


@dataclass
class ConsistencyStepOutput(BaseOutput):
    prev_sample: torch.Tensor      # the latents for the next step (the clean ones after the last)
    pred_original_sample: torch.Tensor  # this step's consistency prediction x0


def karras_sigmas(ramp: torch.Tensor, sigma_min: float, sigma_max: float,
                  rho: float) -> torch.Tensor:
    """EDM's noise levels: ramp 0 -> sigma_max, ramp 1 -> sigma_min, spaced by rho."""
    low, high = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return (high + ramp * (low - high)) ** rho


def scalings(sigma: torch.Tensor | float, sigma_data: float) -> tuple[Any, Any]:
    """(c_skip, c_out) of the consistency prediction at noise level sigma."""
    c_skip = sigma_data ** 2 / (sigma ** 2 + sigma_data ** 2)
    c_out = -sigma * sigma_data / (sigma ** 2 + sigma_data ** 2) ** 0.5
    return c_skip, c_out


class ConsistencySampler(SchedulerMixin, ConfigMixin):
    """A multistep stochastic consistency sampler over Karras sigmas (diffusers' interface)."""

    order = 1

    @register_to_config
    def __init__(self, num_train_timesteps: int = 40,  # noise levels the model was distilled on
                 sigma_min: float = 0.002,  # the cleanest level
                 sigma_max: float = 700.0,  # the noisiest level (SVD's)
                 sigma_data: float = 1.0,   # the data's standard deviation in the scalings
                 rho: float = 7.0,          # Karras spacing: larger puts more steps at low noise
                 s_noise: float = 1.0):     # scale of the fresh noise between steps
        self.init_noise_sigma = (sigma_max ** 2 + 1) ** 0.5  # the pipeline scales its noise by it
        self.generator: torch.Generator | None = None
        self.noise_source: NoiseSource | None = None
        self.num_inference_steps: int | None = None
        self._step_index: int | None = None
        self.set_timesteps(num_train_timesteps)

    def set_noise_generator(self, generator: torch.Generator | None) -> None:
        """The generator every re-noising draw comes from (the job's, seeded per run)."""
        self.generator = generator

    def set_noise_source(self, source: NoiseSource | None) -> None:
        """Where the re-noising draws come from instead (`source(shape, dtype, device)`), until
        set back to None: the same draws made ahead of time (models.noise.NoiseAhead.take)."""
        self.noise_source = source

    @property
    def step_index(self) -> int | None:
        return self._step_index

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None,
                      **_unused: Any) -> None:
        train = self.config.num_train_timesteps
        if not 1 <= num_inference_steps <= train:
            raise ValueError(f"num_inference_steps {num_inference_steps} is outside 1-{train}: "
                             f"the model was distilled on {train} noise levels")
        self.num_inference_steps = num_inference_steps
        stride = train // num_inference_steps
        levels = torch.arange(num_inference_steps, dtype=torch.float64) * stride  # from noisiest
        sigmas = karras_sigmas(levels / (train - 1), self.config.sigma_min,
                               self.config.sigma_max, self.config.rho)
        self.sigmas = torch.cat([sigmas, sigmas.new_zeros(1)]).to(torch.float32)
        self.timesteps = (0.25 * torch.log(sigmas)).to(device=device, dtype=torch.float32)
        self._step_index = None

    def scale_model_input(self, sample: torch.Tensor, timestep: Any = None) -> torch.Tensor:
        if self._step_index is None:
            self._step_index = 0
        sigma = self.sigmas[self._step_index].item()
        return sample / (sigma ** 2 + self.config.sigma_data ** 2) ** 0.5

    def step(self, model_output: torch.Tensor, timestep: Any, sample: torch.Tensor,
             generator: torch.Generator | None = None,
             return_dict: bool = True) -> ConsistencyStepOutput | tuple[torch.Tensor]:
        if self._step_index is None:
            self._step_index = 0
        sigma = self.sigmas[self._step_index].item()
        sigma_next = self.sigmas[self._step_index + 1].item()
        c_skip, c_out = scalings(sigma, self.config.sigma_data)
        denoised = c_skip * sample + c_out * model_output
        if sigma_next > 0:
            prev = denoised + sigma_next * self.config.s_noise * self._fresh_noise(model_output,
                                                                                  generator)
        else:
            prev = denoised
        self._step_index += 1
        if not return_dict:
            return (prev,)
        return ConsistencyStepOutput(prev_sample=prev, pred_original_sample=denoised)

    def _fresh_noise(self, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        if generator is None and self.noise_source is not None:
            noise = self.noise_source(tuple(like.shape), like.dtype, like.device)
            if noise is not None:  # None: the source stood down; the generator draws them
                return noise
        return randn_tensor(like.shape, generator=generator or self.generator, device=like.device,
                            dtype=like.dtype)

    def __len__(self) -> int:
        return self.config.num_train_timesteps
