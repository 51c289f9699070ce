/* Everything is in include/KernelsSupport.h (inline); SwiftPM needs one source file. */
#include "KernelsSupport.h"
