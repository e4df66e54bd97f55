# bash completion for keelctl(1).  The commands and options mirror keelctl's
# command tables (src/cmd/ctl); tests/integration/test_keelctl.py fails when
# a command or option is missing here.  Options may come anywhere on the line,
# so the command is found by skipping options and their arguments.

_keelctl_global_opts="--json --host --port-offset --config --data-dir --timeout --token --user --help --version"
# options that take an argument, global or a command's
_keelctl_arg_opts="--host -H --port-offset -p --config -c --data-dir -d --timeout -t --token --user -u \
--agent -a --severity -s --limit -n --dir --client --machine --output --redis --redis-prefix \
--perf-db --error-db --auth-users --mainpc-host --pc2-host"

_keelctl_commands="status health agents agent errors resources reload user certs migrate"

_keelctl_subcommands() {
    case $1 in
        agent) echo "restart start stop" ;;
        errors) echo "groups" ;;
        user) echo "add passwd delete list" ;;
        certs) echo "generate" ;;
        migrate) echo "config state rollback" ;;
    esac
}

_keelctl_options() {
    case $1 in
        errors) echo "--agent --severity --limit --follow" ;;
        "errors groups") echo "--across-sources" ;;
        "user add") echo "--admin --password-stdin --legacy-sha256" ;;
        "user passwd") echo "--password-stdin --legacy-sha256" ;;
        "certs generate") echo "--dir --force --client" ;;
        "migrate config") echo "--machine --output" ;;
        "migrate state") echo "--dry-run --redis --redis-prefix --perf-db --error-db --auth-users" ;;
        "migrate rollback") echo "--output --mainpc-host --pc2-host --machine" ;;
    esac
}

_keelctl() {
    local cur prev i word path="" nwords=0
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD-1]}

    case $prev in
        --config|-c|--output|--perf-db|--error-db|--auth-users)
            COMPREPLY=($(compgen -f -- "$cur")); return ;;
        --data-dir|-d|--dir)
            COMPREPLY=($(compgen -d -- "$cur")); return ;;
        --machine)
            COMPREPLY=($(compgen -W "mainpc pc2 all" -- "$cur")); return ;;
        --severity|-s)
            COMPREPLY=($(compgen -W "debug info warning error critical" -- "$cur")); return ;;
    esac
    case " $_keelctl_arg_opts " in
        *" $prev "*) COMPREPLY=(); return ;;
    esac

    # the command and subcommand typed so far
    for ((i = 1; i < COMP_CWORD; i++)); do
        word=${COMP_WORDS[i]}
        case $word in
            -*) case " $_keelctl_arg_opts " in *" $word "*) ((i++)) ;; esac ;;
            *) if ((nwords < 2)); then
                   if ((nwords == 0)) || [[ " $(_keelctl_subcommands "$path") " == *" $word "* ]]; then
                       path=${path:+$path }$word
                   fi
               fi
               ((nwords++)) ;;
        esac
    done

    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$_keelctl_global_opts $(_keelctl_options "$path")" -- "$cur"))
    elif [[ -z $path ]]; then
        COMPREPLY=($(compgen -W "$_keelctl_commands" -- "$cur"))
    elif [[ $path != *" "* && -n $(_keelctl_subcommands "$path") ]]; then
        COMPREPLY=($(compgen -W "$(_keelctl_subcommands "$path")" -- "$cur"))
    elif [[ $path == reload ]]; then
        COMPREPLY=($(compgen -W "core resource observability errorbus security" -- "$cur"))
    elif [[ $path == "migrate config" ]]; then
        COMPREPLY=($(compgen -f -- "$cur"))
    fi
}

complete -F _keelctl keelctl
