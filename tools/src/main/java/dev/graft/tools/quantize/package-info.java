/** The quantize command line: a float host's int8 twin ({@code HostModel.quantizeInt8}) written to a file. */
@org.jspecify.annotations.NullMarked
package dev.graft.tools.quantize;
