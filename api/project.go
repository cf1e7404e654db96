package api

// Project is the uc view of a Compose project: what to build and which
// images must be present where. Both slices are sorted by Name.
type Project struct {
	Name   string
	Builds []BuildSpec
	Images []ImageSpec
	// Warnings name what was accepted but has no effect, or an effect the
	// user may not expect, file and field.
	Warnings []string
	// Notes say how names were mapped (uc apply and --dry-run print them).
	Notes []string
	// Files are the Compose files read, as absolute paths.
	Files []string
	// Origin says where the project is applied from (set by state/apply), so
	// that one project name used from two places is noticed.
	Origin string
}
