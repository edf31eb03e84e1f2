package plugin

import "os"

// getenv reads the environment; a variable so tests can stand in.
var getenv = os.Getenv
