"""lenga: an astronomical alert broker (ZTF, LSST) as one Spark Structured Streaming job."""
