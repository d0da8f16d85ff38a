"""Fake sd3_train_network.py: the fake train_network.py with that script's argument surface."""

import argparse

import train_network


def setup_parser() -> argparse.ArgumentParser:
    return train_network.setup_parser("sd3_train_network.py")


if __name__ == "__main__":
    train_network.main(setup_parser())
