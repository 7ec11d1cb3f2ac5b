"""Direct float64 formulas of MATLAB's imresize, shared by the reference implementations in the tests."""


def matlab_kernel(x: float) -> float:
    """MATLAB's bicubic kernel (a = -0.5), written out piece by piece."""
    ax = abs(x)
    if ax <= 1:
        return 1.5 * ax**3 - 2.5 * ax**2 + 1
    if ax <= 2:
        return -0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2
    return 0.0
