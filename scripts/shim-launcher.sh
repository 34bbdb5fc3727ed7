#!/bin/sh
# containerd-shim-pyrunc-v1, the shim of the runtime io.containerd.pyrunc.v1
# (docs/shim.md). The shim is Python: this runs @SHIM@ for everything but one
# case. containerd runs `<shim> ... delete` each time it lets go of a task's
# shim and waits for it; an interpreter's start is most of that wait. When
# the shim deleted the task itself (container gone, rootfs unmounted) it
# left the answer in the bundle (.pyrunc-delete-response: printf escapes,
# then the shim's pid and start time). If its socket is gone, or the shim
# that wrote the record still runs (a pod's shim serving the others), there
# is nothing to clean up, and the answer is printed here. Anything else,
# or anything unusual, goes to the shim. scripts/install.sh fills in @SHIM@.

# whether process $1 is the one that started at $2 (/proc/<pid>/stat's 22nd
# field, in clock ticks since boot): a pid alone may be another's by now
shim_runs() {
	case $1:$2 in *[!0-9:]* | :* | *:) return 1 ;; esac
	st=
	{ IFS= read -r st || :; } 2>/dev/null <"/proc/$1/stat" || return 1
	set -- "$2" ${st##*) }  # from the 3rd field on, after "pid (comm) "
	[ "$#" -ge 21 ] || return 1
	started=$1
	shift 20
	[ "$1" = "$started" ]
}

ns= bundle= want= action=
left=$#
for a; do
	left=$((left - 1))
	if [ -n "$want" ]; then  # a flag's value
		case $want in ns) ns=$a ;; bundle) bundle=$a ;; esac
		want=
		continue
	fi
	case $a in
	-namespace | --namespace) want=ns ;;
	-bundle | --bundle) want=bundle ;;
	-address | --address | -publish-binary | --publish-binary | -id | --id) want=other ;;
	-namespace=* | --namespace=*) ns=${a#*=} ;;
	-bundle=* | --bundle=*) bundle=${a#*=} ;;
	-address=* | --address=* | -publish-binary=* | --publish-binary=* | -id=* | --id=* | -debug | --debug) ;;
	delete)
		[ "$left" = 0 ] && action=delete
		break
		;;
	*) break ;;
	esac
done
if [ "$action" = delete ] && [ -n "$ns" ]; then
	: "${bundle:=.}"
	addr=
	if [ -f "$bundle/address" ]; then
		{ IFS= read -r addr || :; } <"$bundle/address"
	fi
	sock=
	case $addr in unix://?*) sock=${addr#unix://} ;; esac
	resp= spid= sstart=
	if [ -f "$bundle/.pyrunc-delete-response" ]; then
		{
			IFS= read -r resp || :
			IFS=' ' read -r spid sstart || :
		} <"$bundle/.pyrunc-delete-response"
	fi
	if [ -n "$sock" ] && [ -e "$sock" ] && ! shim_runs "$spid" "$sstart"; then
		resp=  # a dead shim's socket: the shim's `delete` removes it
	fi
	case $resp in
	'' | *[!\\0-7]*) ;;
	*)
		printf "$resp"
		exit 0
		;;
	esac
fi
exec "@SHIM@" "$@"
