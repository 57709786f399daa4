"""``modelpress sign``: argument parsing only; the signing is :mod:`modelpress.signing`."""

from __future__ import annotations

import click

#: ``--sign-key`` on convert, deploy, package and press: the package is signed before anyone can see it
sign_key_option = click.option(
    "--sign-key", type=click.Path(exists=True, dir_okay=False, path_type=str), metavar="KEY",
    help="Sign the package(s) with this private key (PEM, elliptic curve) into model.sig; `modelpress serve "
         "--trust-key PUB` then serves them (see `modelpress sign`).")


@click.command()
@click.argument("package", type=click.Path(exists=True, file_okay=False, path_type=str))
@click.option("--key", required=True, type=click.Path(dir_okay=False, path_type=str),
              help="Private key (PEM, elliptic curve P-256/P-384/P-521) that signs; keep it off the devices.")
@click.option("--certificate", type=click.Path(exists=True, dir_okay=False, path_type=str),
              help="Signing certificate (PEM) for --key: the signature then carries it, and verifiers trust "
                   "its CA instead of the key itself.")
@click.option("--chain", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=str),
              help="Intermediate / CA certificates (PEM) between --certificate and the root (repeatable).")
def sign(package: str, key: str, certificate: str | None, chain: tuple[str, ...]) -> None:
    """Sign every file of PACKAGE (a model package folder) into PACKAGE/model.sig.

    A runtime started with `--trust-key PUB` serves only packages whose signature verifies with PUB (or,
    for certificate signatures, chains to the CA certificate given as PUB) and covers every file.

    \b
    Examples:
      openssl ecparam -name prime256v1 -genkey -noout -out signing-key.pem
      openssl ec -in signing-key.pem -pubout -out signing-key.pub
      modelpress sign build/rpi --key signing-key.pem
      modelpress inspect build/rpi --trust-key signing-key.pub
      modelpress sign build/rpi --key release.key --certificate release.pem --chain team-ca.pem
    """
    from modelpress.errors import UsageError
    from modelpress.signing import sign_package, signer_of

    if chain and certificate is None:
        raise UsageError("--chain needs --certificate (the signing certificate the chain belongs to)")
    target = sign_package(package, key, certificate=certificate, chain=chain)
    click.echo(f"signed {package} ({signer_of(package)}) into {target}")
