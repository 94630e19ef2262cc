"""The core: outputs with their row ids and class names, alignment and combination rules, scores,
errors and the options table. numpy only; imports nothing else of the package."""
