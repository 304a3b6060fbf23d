# shellcheck shell=sh
# The one definition of "mount this image as root" on a reconciler node.
#
# Sourced by the initramfs /init (first boot) and by node-switch (live root
# switch); the agent runs it as a command for soft-reboot:
#   sh mount-root.sh mount_image_root SQUASHFS STAGE_DIR TARGET
# A staged version lives in STAGE_DIR=/run/reconciler/stage/<rootfs sha256>:
# rootfs.squashfs, mounted read-only at STAGE_DIR/lower, under a fresh tmpfs
# overlay (STAGE_DIR/upper, STAGE_DIR/work) mounted on TARGET. Every value is
# quoted: most come from the kernel command line or the agent.

RECONCILER_RUN=/run/reconciler

rc_log() {
	printf 'reconciler: %s\n' "$*"
}

# is_mounted DIR: true when DIR is a mount point (busybox has no `mountpoint`).
is_mounted() {
	_dir=$1
	while read -r _src _mnt _rest; do
		[ "$_mnt" = "$_dir" ] && return 0
	done < /proc/mounts
	return 1
}

# valid_sha256 VALUE: 64 lower-case hex digits.
valid_sha256() {
	case "$1" in
	*[!0-9a-f]*) return 1 ;;
	esac
	[ "${#1}" -eq 64 ]
}

# verify_sha256 FILE SHA: true when FILE's sha256 is SHA.
verify_sha256() {
	valid_sha256 "$2" || return 1
	_actual=$(sha256sum "$1" 2>/dev/null) || return 1
	[ "${_actual%% *}" = "$2" ]
}

# cmdline_value KEY [CMDLINE_FILE]: the value of the last KEY=VALUE word on the
# kernel command line (prints nothing and fails when absent). Words are never globbed.
cmdline_value() (
	_found=1
	_cmdline=$(cat "${2:-/proc/cmdline}") || exit 1
	set -f
	for _word in $_cmdline; do
		case "$_word" in
		"$1"=*) _value=${_word#*=} && _found=0 ;;
		esac
	done
	[ "$_found" -eq 0 ] && printf '%s\n' "$_value"
)

# image_init_path ROOT [PATH]: resolve PATH (default /sbin/init) inside the image
# mounted at ROOT, following symlinks (absolute ones relative to ROOT) component
# by component; prints the resolved path inside the image when it is an
# executable file, else fails.
image_init_path() {
	_root=$1
	_rest=${2:-/sbin/init}
	_rest=${_rest#/}
	_cur=""
	_hops=0
	while [ -n "$_rest" ]; do
		_comp=${_rest%%/*}
		case "$_rest" in
		*/*) _rest=${_rest#*/} ;;
		*) _rest="" ;;
		esac
		case "$_comp" in
		"" | .) continue ;;
		..)
			_cur=${_cur%/*}
			continue
			;;
		esac
		if [ -L "$_root$_cur/$_comp" ]; then
			_hops=$((_hops + 1))
			[ "$_hops" -le 40 ] || return 1
			_target=$(readlink "$_root$_cur/$_comp") || return 1
			case "$_target" in
			/*)
				_cur=""
				_rest="${_target#/}${_rest:+/$_rest}"
				;;
			*) _rest="$_target${_rest:+/$_rest}" ;;
			esac
		else
			_cur="$_cur/$_comp"
		fi
	done
	[ -f "$_root$_cur" ] && [ -x "$_root$_cur" ] || return 1
	printf '%s\n' "${_cur:-/}"
}

# mount_image_root SQUASHFS STAGE_DIR TARGET: squashfs read-only at STAGE_DIR/lower
# (kept when already mounted: the agent mounts it to check the image), a fresh
# upper and work dir on the /run tmpfs, and the overlay on TARGET.
mount_image_root() {
	_squashfs=$1
	_stage=$2
	_target=$3
	case "$_stage" in
	*[,:\\]* | *[[:space:]]*)
		rc_log "stage dir $_stage: commas, colons, backslashes and spaces break overlay options"
		return 1
		;;
	esac
	mkdir -p "$_stage/lower" "$_target" || return 1
	if ! is_mounted "$_stage/lower"; then
		mount -t squashfs -o loop,ro "$_squashfs" "$_stage/lower" || {
			rc_log "cannot mount $_squashfs (not a squashfs image?)"
			return 1
		}
	fi
	# A fresh writable layer each time a version becomes root: nodes are stateless,
	# and an upper dir still used by a lazily unmounted overlay must not be reused.
	rm -rf "$_stage/upper" "$_stage/work"
	mkdir -p "$_stage/upper" "$_stage/work" || return 1
	mount -t overlay overlay \
		-o "lowerdir=$_stage/lower,upperdir=$_stage/upper,workdir=$_stage/work" "$_target" || {
		rc_log "cannot mount the overlay of $_stage on $_target"
		return 1
	}
}

# json_string VALUE: VALUE as a JSON string literal (quotes, backslashes, controls escaped).
json_string() {
	printf '"%s"' "$(printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' | tr -d '\000-\037')"
}

# json_or_null VALUE: a JSON string, or null when VALUE is empty.
json_or_null() {
	if [ -n "$1" ]; then json_string "$1"; else printf 'null'; fi
}

# write_current_json IMAGE VERSION KERNEL_SHA ROOTFS_SHA STAGE BOOTED_BY: what runs now,
# in /run/reconciler/current.json (written atomically).
write_current_json() {
	mkdir -p "$RECONCILER_RUN" || return 1
	{
		printf '{"image": %s, "version": %s, ' "$(json_string "$1")" "$(json_string "$2")"
		printf '"kernel_sha256": %s, "rootfs_sha256": %s, ' "$(json_or_null "$3")" "$(json_or_null "$4")"
		printf '"stage": %s, "booted_by": %s}\n' "$(json_string "$5")" "$(json_string "$6")"
	} > "$RECONCILER_RUN/current.json.tmp" && mv "$RECONCILER_RUN/current.json.tmp" "$RECONCILER_RUN/current.json"
}

# Run as a command: `sh mount-root.sh FUNCTION ARGS...` (only the functions above).
case "${0##*/}" in
mount-root.sh)
	if [ "$#" -gt 0 ]; then
		case "$1" in
		mount_image_root | verify_sha256 | image_init_path | is_mounted | cmdline_value | write_current_json)
			"$@"
			exit $?
			;;
		*)
			rc_log "mount-root.sh: unknown function $1"
			exit 2
			;;
		esac
	fi
	;;
esac
