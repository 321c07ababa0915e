"""Steps of the queries; their contracts are in :mod:`lenga.stream.steps.base`, which is all a step
imports of the queries."""
