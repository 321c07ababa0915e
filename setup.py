"""lenga: an astronomical alert broker as one Spark Structured Streaming job."""

from pathlib import Path

from setuptools import find_packages, setup

REQUIREMENTS = [
    line.strip()
    for line in Path(__file__).with_name("requirements.txt").read_text().splitlines()
    if line.strip() and not line.startswith("#")
]

setup(
    name="lenga",
    version="0.1.0",
    description="Astronomical alert broker (ZTF, LSST) on Spark Structured Streaming and Delta Lake",
    python_requires=">=3.11",
    packages=find_packages(include=["lenga", "lenga.*", "udfs", "udfs.*", "jobs", "jobs.*", "models", "models.*"]),
    package_data={"": ["*.yaml", "*.json", "*.ubj", "*.pt", "*.md"]},
    install_requires=REQUIREMENTS,
)
