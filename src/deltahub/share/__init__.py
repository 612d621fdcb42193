"""The delta registry: versioned card schema, cards, validation, publish/pull/list/show."""
