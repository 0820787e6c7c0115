"""`telecare simulate`: placeholder until the fleet simulator lands."""

from __future__ import annotations

import argparse

from core.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--devices", type=int, default=10)


async def run_simulate(args: argparse.Namespace, settings: Settings) -> int:
    raise NotImplementedError
