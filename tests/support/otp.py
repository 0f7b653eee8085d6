"""Second-factor codes, as the officer's authenticator app computes them."""

from django_otp.oath import totp


def totp_code(device) -> str:
    """The code `device` accepts now."""
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits, drift=device.drift):0{device.digits}d}"


def totp_wrong_code(device) -> str:
    """A code of the right shape that `device` refuses now."""
    return "000000" if totp_code(device) != "000000" else "111111"
