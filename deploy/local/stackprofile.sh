# Sourced (after bin/stackctl is built) by the scripts that run on either
# profile of the local stack: PROFILE=default (plaintext Kafka, the Temporal
# dev server) or PROFILE=secure (Kafka with SASL_SSL and SCRAM, Temporal
# with TLS). The secure stack keeps its data in a stack dir of its own,
# <default stack dir>-secure unless FLOWPROOF_SECURE_STACK_DIR says
# otherwise, because a stack's Kafka is formatted for one profile; the two
# share ports, so only one runs at a time.
#
# Sets stack_profile, default_stack_dir, secure_stack_dir, and exports
# FLOWPROOF_STACK_DIR for the chosen profile.

stack_profile=${PROFILE:-default}
# The stack dir the environment names (a shell that sourced the secure
# stack's env names that one).
current_stack_env=$(bin/stackctl env)
current_stack_dir=$(eval "$current_stack_env" && printf '%s' "$FLOWPROOF_STACK_DIR")
current_stack_profile=$(eval "$current_stack_env" && printf '%s' "$FLOWPROOF_STACK_PROFILE")
if [ "$current_stack_profile" = secure ]; then
  secure_stack_dir=$current_stack_dir
  default_stack_dir=${current_stack_dir%-secure}
  if [ "$default_stack_dir" = "$current_stack_dir" ]; then
    echo "FLOWPROOF_STACK_DIR=$current_stack_dir is a secure stack whose default one is unknown: unset FLOWPROOF_STACK_DIR" >&2
    exit 2
  fi
else
  default_stack_dir=$current_stack_dir
  secure_stack_dir=${FLOWPROOF_SECURE_STACK_DIR:-$default_stack_dir-secure}
fi
unset current_stack_env
case "$stack_profile" in
  default) export FLOWPROOF_STACK_DIR="$default_stack_dir" ;;
  secure) export FLOWPROOF_STACK_DIR="$secure_stack_dir" ;;
  *)
    echo "PROFILE=$stack_profile: want default or secure" >&2
    exit 2
    ;;
esac

# stack_running DIR: whether the stack in DIR has its Kafka up (stackctl
# checks it with that stack's own settings).
stack_running() {
  FLOWPROOF_STACK_DIR="$1" bin/stackctl status --only kafka >/dev/null 2>&1
}

# other_stack_dir is the stack dir of the profile not chosen.
if [ "$stack_profile" = secure ]; then
  other_stack_dir=$default_stack_dir
else
  other_stack_dir=$secure_stack_dir
fi
