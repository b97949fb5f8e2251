_runflow_bg_completion() {
    local IFS=$'
'
    COMPREPLY=( $( env COMP_WORDS="${COMP_WORDS[*]}" \
                   COMP_CWORD=$COMP_CWORD \
                   _RUNFLOW_BG_COMPLETE=complete_bash $1 ) )
    return 0
}

complete -o default -F _runflow_bg_completion runflow-bg

