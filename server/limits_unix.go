package server

import "syscall"

// errTooManyFiles is the accept error that clears once connections close.
var errTooManyFiles = syscall.EMFILE
