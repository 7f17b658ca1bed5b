// Package plots draws the project's figures with gonum/plot: line charts with
// one line per method (distinct colour, marker and dash, the same for a method
// in every figure), stacked bar charts for time breakdowns, and multi-panel
// figures encoded as PNG or SVG. It works on plain numbers only: it never reads
// results files, imports vk or touches a device; package experiments turns
// result rows into the specs defined here and writes the bytes to disk.
package plots
