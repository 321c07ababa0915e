"""lenga: an astronomical alert broker as one Spark Structured Streaming job."""

from setuptools import find_packages, setup

setup(
    name="lenga",
    version="0.1.0",
    description="Astronomical alert broker (ZTF, LSST) on Spark Structured Streaming and Delta Lake",
    python_requires=">=3.11",
    packages=find_packages(include=["lenga", "lenga.*", "udfs", "udfs.*", "jobs", "jobs.*", "models", "models.*"]),
    package_data={"": ["*.yaml", "*.json", "*.ubj", "*.pt", "*.md"]},
    install_requires=[
        line.strip()
        for line in open("requirements.txt")
        if line.strip() and not line.startswith("#")
    ],
)
