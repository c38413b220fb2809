// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * bench/prog_lines: where in a loaded BPF program's JIT image each source
 * line starts, for attributing profiler samples (`perf script -F sym,symoff`
 * gives bpf_prog_<tag>_<name>+0xOFF) to lines of the bpf/ sources. perf and
 * bpftool can annotate a JIT image only when built with a disassembler
 * (libbfd, libopcodes), which Debian's are not; the kernel's line info
 * needs none.
 *
 *   prog_lines NAME...
 *
 * For every loaded program whose name is one of NAME (as `bpftool prog`
 * shows it), prints one line per line-info record:
 *
 *   TAG_NAME JIT_OFFSET LINE SOURCE_TEXT
 *
 * TAG_NAME as in perf's symbol (the program's tag in hex, "_", its name),
 * so two builds' programs of one name loaded at once stay apart.
 * JIT_OFFSET in hex from the program's start, LINE the source line number
 * (0 where the compiler made up the code), in JIT order. A sample at +OFF
 * belongs to the last record whose offset is <= OFF. Needs root.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>

static int wanted(const char *name, int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (strcmp(name, argv[i]) == 0)
			return 1;
	return 0;
}

/* The line records of program fd, printed; 0 or a negative errno. */
static int print_lines(int fd, const struct bpf_prog_info *first)
{
	uint32_t nlines = first->nr_line_info, njited = first->nr_jited_line_info;
	struct bpf_prog_info info = {0};
	uint32_t len = sizeof(info);
	struct bpf_line_info *lines = calloc(nlines ? nlines : 1, sizeof(*lines));
	uint64_t *jited = calloc(njited ? njited : 1, sizeof(*jited));
	uint64_t start = 0;
	char tag[2 * BPF_TAG_SIZE + 1];
	struct btf *btf = NULL;
	int err = 0;

	if (!lines || !jited) {
		err = -ENOMEM;
		goto out;
	}
	if (nlines != njited || nlines == 0) {
		fprintf(stderr, "prog_lines: %s: no line info (loaded without BTF?)\n", first->name);
		goto out;
	}
	info.nr_line_info = nlines;
	info.line_info_rec_size = sizeof(*lines);
	info.line_info = (uint64_t)(uintptr_t)lines;
	info.nr_jited_line_info = njited;
	info.jited_line_info_rec_size = sizeof(*jited);
	info.jited_line_info = (uint64_t)(uintptr_t)jited;
	info.nr_jited_ksyms = 1;
	info.jited_ksyms = (uint64_t)(uintptr_t)&start;
	if (bpf_obj_get_info_by_fd(fd, &info, &len)) {
		err = -errno;
		goto out;
	}
	if (!start) {
		/* kernel.kptr_restrict hides kernel addresses from us */
		fprintf(stderr, "prog_lines: %s: JIT addresses hidden (kernel.kptr_restrict)\n",
			first->name);
		err = -EPERM;
		goto out;
	}
	for (uint32_t i = 0; i < BPF_TAG_SIZE; i++)
		snprintf(tag + 2 * i, 3, "%02x", first->tag[i]);
	btf = btf__load_from_kernel_by_id(first->btf_id);
	for (uint32_t i = 0; i < nlines; i++) {
		const char *text = btf ? btf__name_by_offset(btf, lines[i].line_off) : NULL;

		while (text && (*text == ' ' || *text == '\t'))
			text++;
		printf("%s_%s %llx %u %s\n", tag, first->name, (unsigned long long)(jited[i] - start),
		       BPF_LINE_INFO_LINE_NUM(lines[i].line_col), text ? text : "");
	}
out:
	btf__free(btf);
	free(lines);
	free(jited);
	return err;
}

int main(int argc, char **argv)
{
	uint32_t id = 0;
	int found = 0, err;

	if (argc < 2) {
		fprintf(stderr, "usage: prog_lines NAME...\n");
		return 2;
	}
	while ((err = bpf_prog_get_next_id(id, &id)) == 0) {
		struct bpf_prog_info info = {0};
		uint32_t len = sizeof(info);
		int fd = bpf_prog_get_fd_by_id(id);

		if (fd < 0)
			continue; /* gone meanwhile */
		if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0 && wanted(info.name, argc, argv)) {
			err = print_lines(fd, &info);
			if (err) {
				fprintf(stderr, "prog_lines: %s: %s\n", info.name, strerror(-err));
				close(fd);
				return 1;
			}
			found++;
		}
		close(fd);
	}
	if (err && errno == EPERM) {
		fprintf(stderr, "prog_lines: needs root\n");
		return 1;
	}
	if (!found) {
		fprintf(stderr, "prog_lines: no loaded program of those names\n");
		return 1;
	}
	return 0;
}
