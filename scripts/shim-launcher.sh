#!/bin/sh
# containerd-shim-pyrunc-v1, the shim of the runtime io.containerd.pyrunc.v1
# (docs/shim.md). The shim is Python: this runs @SHIM@ for everything but one
# case. containerd runs `<shim> ... delete` each time a shim has ended and
# waits for it; an interpreter's start is most of that wait. When the shim
# deleted the task itself (container gone, rootfs unmounted) it left the
# answer in the bundle (.pyrunc-delete-response, printf escapes), and its
# socket is gone: then there is nothing to clean up, and the answer is
# printed here. Anything else, or anything unusual, goes to the shim.
# scripts/install.sh fills in @SHIM@.
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
	resp=
	if { [ -z "$sock" ] || ! [ -e "$sock" ]; } && [ -f "$bundle/.pyrunc-delete-response" ]; then
		{ IFS= read -r resp || :; } <"$bundle/.pyrunc-delete-response"
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
