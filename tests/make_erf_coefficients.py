"""Fit bert.ERF_COEFFICIENTS: erf(z) = tanh(z * P(z^2)) with P of degree 6, i.e. P(s) ~ artanh(erf(z)) / z.

Weighted least squares on z in (0, 4.5], weighted by d erf / d P = (1 - erf^2) z so that the error of erf
(not of P) is what is minimized, re-weighted by the error itself for a few hundred rounds, which drives the
fit towards the minimax one. Prints the coefficients and the errors that tests/test_bert.py checks.
NumPy and the standard library only:  python tests/make_erf_coefficients.py
"""
import math

import numpy as np

DEGREE, Z_MAX = 6, 4.5


def fit():
    z = np.linspace(1e-4, Z_MAX, 60001)
    erf, erfc = np.array([math.erf(v) for v in z]), np.array([math.erfc(v) for v in z])
    target = 0.5 * np.log((2 - erfc) / erfc) / z  # artanh(erf z) / z, without cancellation near erf = 1
    sensitivity = (1 - erf ** 2) * z
    powers = (z * z)[:, None] ** np.arange(DEGREE + 1)
    weights, best = sensitivity.copy(), (np.inf, None)
    for _ in range(400):
        coefficients = np.linalg.lstsq(powers * weights[:, None], target * weights, rcond=None)[0]
        error = np.abs(sensitivity * (powers @ coefficients - target))
        best = min(best, (error.max(), coefficients), key=lambda b: b[0])
        weights *= (error / error.max() + 1e-3) ** 0.3
    return best


if __name__ == "__main__":
    error, coefficients = fit()
    print("ERF_COEFFICIENTS =", coefficients.tolist())
    print(f"max |error| of the approximation on (0, {Z_MAX}]: {error:.2e}")
