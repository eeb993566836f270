"""Builds the package with its gRPC stubs generated from the repository's
protos (`../../proto`) by grpcio-tools, into the top-level `detour.v1`
package the protos declare. Configuration lives in pyproject.toml."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

PROTOS = Path(__file__).resolve().parent.parent.parent / "proto"


class BuildWithStubs(build_py):
    def run(self):
        super().run()
        from grpc_tools import protoc
        import grpc_tools

        if not (PROTOS / "detour" / "v1").is_dir():
            raise SystemExit(
                f"no protos at {PROTOS}: build the client from a checkout of the Detour repository"
            )
        out = Path(self.build_lib)
        well_known = Path(grpc_tools.__file__).parent / "_proto"
        sources = sorted(str(p) for p in (PROTOS / "detour" / "v1").glob("*.proto"))
        status = protoc.main(
            [
                "grpc_tools.protoc",
                f"-I{PROTOS}",
                f"-I{well_known}",
                f"--python_out={out}",
                f"--pyi_out={out}",
                f"--grpc_python_out={out}",
                *sources,
            ]
        )
        if status != 0:
            raise SystemExit(f"protoc failed ({status})")
        for package in (out / "detour", out / "detour" / "v1"):
            (package / "__init__.py").touch()


setup(cmdclass={"build_py": BuildWithStubs})
