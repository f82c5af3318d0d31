/**
 * Word classes ("concepts") the jailbreak model reads besides character n-grams: each concept is
 * one feature, and two concepts a few words apart are another (an override verb near "rules",
 * "without" near "filters"). With a few hundred training prompts, n-grams learn the phrasings
 * they saw; concepts let one example of "disregard your guidance" carry over to "set aside the
 * policy you were given", and to the same ideas in other languages.
 *
 * Entries are word prefixes of the normalised (NFKC, lower-case) text; `=word` must match a whole
 * word. Scripts written without spaces (Chinese, Japanese) match anywhere inside a run.
 */
export const CONCEPTS: Readonly<Record<string, readonly string[]>> = {
    override: [
        "ignor", "disregard", "forget", "forgot", "overrid", "bypass", "=skip", "neglect", "cancel", "revok", "revoke", "erase", "unlearn", "supersed", "outrank", "=void", "=null", "scratch", "=drop", "suspend", "lifted", "disabl", "deactivat", "circumvent", "evade", "evasion",
        "olvid", "omite", "oublie", "ignorier", "vergiss", "vergess", "dimentic", "esqueç", "esquec", "игнор", "забуд", "забыть", "zignoruj", "zapomnij", "negeer", "vergeet", "unut", "忽略", "忘记", "无视", "無視", "忘れ", "무시", "잊어", "잊", "omitir", "ignora", "ignore", "ignoruj", "negeer", "yok"
    ],
    prior: [
        "previous", "prior", "=above", "earlier", "preceding", "initial", "original", "former", "outdated", "=before", "existing",
        "anterior", "previa", "précédent", "precedent", "vorherig", "bisherig", "precedenti", "предыдущ", "прежн", "poprzedni", "eerdere", "vorige", "önceki", "之前", "以前", "先前", "これまで", "以前の", "이전", "앞의", "vorigen", "antérieur", "anteriori", "precedent", "eski"
    ],
    instruction: [
        "instruct", "directive", "guidance", "guideline", "command", "=orders", "=told", "programming", "configur", "setup", "=prompt", "prompts", "preamble",
        "instrucc", "consigne", "anweisung", "istruzion", "instruç", "instruc", "инструкц", "указани", "instrukcj", "instructie", "talimat", "指令", "指示", "提示词", "プロンプト", "지시", "명령", "프롬프트", "설정", "anweisungen", "indicazion", "instrucoes", "polecen", "yönerge", "talimatlar"
    ],
    restriction: [
        "=rule", "=rules", "restrict", "filter", "=limit", "=limits", "limitation", "censor", "ethic", "moral", "safety", "safeguard", "guardrail", "=policy", "policies", "constraint", "moderat", "alignment", "refus", "norms",
        "regla", "restricc", "règle", "regle", "regel", "richtlini", "einschränk", "regol", "regra", "restriç", "правил", "огранич", "фильтр", "цензур", "zasad", "ogranicz", "beperking", "kural", "kısıtla", "规则", "限制", "约束", "政策", "审查", "道德", "ルール", "制限", "制約", "倫理", "제한", "규칙", "필터", "검열", "윤리", "filtr", "sansür", "censur", "ética", "etica", "ethik", "этик", "politique", "politica", "politiche", "richtlinie", "políticas", "kısıtlama"
    ],
    absence: [
        "=no", "without", "=free", "freed", "unrestrict", "unfilter", "uncensor", "unbound", "unlimit", "amoral", "unethic", "unalign", "jailbr", "=off", "removed", "=nothing", "=never",
        "=sin", "libre", "=sans", "=ohne", "=keine", "=frei", "senza", "=sem", "=без", "=bez", "zonder", "没有", "不受", "不再", "ない", "のない", "없는", "없이", "없어", "=ni", "=ningún", "ninguna", "nenhum", "nessun", "żadn", "=geen", "hiçbir", "=aucun", "aucune", "=kein", "=ohne", "=не", "=ни"
    ],
    persona: [
        "pretend", "alsof", "=act", "=acting", "roleplay", "=role", "imagine", "character", "persona", "become", "simulat", "behave", "channel", "impersonat",
        "finge", "finja", "actúa", "semblant", "incarne", "=als", "fingi", "притвор", "представь", "udawaj", "davran", "假装", "扮演", "ふり", "演じ", "척", "=sei", "=eres", "=tu", "=ты", "=je", "=jij", "=sen", "fais", "=finja", "=finge", "=sé"
    ],
    ai: ["=ai", "assistant", "=model", "chatbot", "=bot", "=llm", "chatgpt", "=gpt", "=ia", "=ki", "=ии", "нейросет", "人工智能", "模型", "アシスタント", "=agent", "=agents", "=models", "=bots", "grader", "reviewer", "screener", "summaris", "summariz", "parser", "crawler"],
    leak: [
        "reveal", "=print", "=show", "repeat", "output", "=echo", "=dump", "=leak", "disclose", "display", "recite", "=paste", "=quote", "=copy", "verbatim", "=spell",
        "muestra", "muéstra", "revela", "affiche", "montre", "révèle", "=zeig", "verrat", "mostra", "rivela", "mostre", "revele", "покажи", "выведи", "pokaż", "=laat", "göster", "输出", "显示", "告诉我", "表示", "教えて", "보여", "알려", "출력", "repite", "répète", "repete", "wiederhol", "ripeti", "repita", "повтори", "powtórz", "herhaal", "tekrarla", "重复", "반복", "=dime", "=dis", "=sag", "=dimmi", "=diga", "скажи", "=powiedz", "=zeg", "söyle"
    ],
    secret: [
        "system", "hidden", "secret", "confidential", "=context", "=word", "initiali",
        "sistema", "système", "systeme", "systemprompt", "системн", "скрыт", "systemow", "systeem", "sistem", "系统", "隐藏", "システム", "一字一句", "시스템", "숨겨진", "비밀", "ocult", "cachée", "caché", "versteckt", "verborgen", "nascost", "ukryt", "gizli", "=palabra", "=mot", "=wort", "=parola", "слово", "=woord", "kelime", "그대로", "逐字"
    ],
    mode: [
        "=mode", "=dan", "=stan", "=dude", "jailbreak", "=sudo", "=god", "developer", "=debug", "maintenance", "=admin", "=root", "unlock", "activat", "=enable", "enabled", "engage", "diagnostic", "tier", "=raw", "anarchy",
        "=modo", "modus", "modalità", "режим", "разработчик", "entwicklermodus", "desarrollador", "développeur", "模式", "开发者", "モード", "모드", "개발자", "=modo", "=mode", "=modus", "режим", "activ", "включ", "aktiv", "etkin", "ativad", "attivat", "=dan"
    ],
    covert: ["secretly", "knowing", "=hide", "=hidden", "=silently", "quietly", "=bcc", "invisible", "=unnoticed", "nobody", "=hiding", "detection", "=flagged", "monitors", "moderation", "=mention", "=mentioning", "=telling", "=unaware", "behind"],
    exfil: ["exfiltrat", "=send", "forward", "upload", "transcript", "credential", "password", "=api", "=keys", "=ssh", "=rsa", "=aws", "shadow", "curl", "collect", "=wire", "contraseña", "passwort", "senha", "пароль", "密码", "パスワード", "hasło", "wachtwoord", "=email", "contacts", "environment", "variables", "passwd", "=rsa", "credentials", "=token", "tokens", "inbox", "비밀번호", "=ssn"],
    encode: ["decode", "base64", "rot13", "=hex", "cipher", "backwards", "reverse", "morse", "leetspeak", "encod", "fragment", "combine", "concaten", "acrostic", "=pig", "escape", "emoji", "=latin"],
    obey: ["=obey", "comply", "complian", "=follow", "execut", "acknowledg", "=agree", "=confirm", "=must", "awaiting", "=proceed", "=carry", "=do", "=run", "=perform", "=commit", "=deal", "=ready", "=agreed"],
    persist: ["always", "=never", "henceforth", "onward", "=until", "remember", "persist", "=every", "=now", "=anymore", "longer", "désormais", "=jetzt", "=nun", "ahora", "adesso", "agora", "теперь", "отныне", "vanaf", "artık", "teraz", "从现在", "今から", "지금부터", "이제", "=sofort", "momento", "maintenant", "момент", "=bundan", "=teraz", "=ora", "poi", "agora", "=desde", "=partir", "=vanaf"],
    harm: ["bomb", "weapon", "explosiv", "methamphetamine", "=meth", "=drug", "malware", "ransomware", "keylogger", "phishing", "=hack", "hacker", "=steal", "steals", "launder", "=stalk", "=forge", "slur", "hateful", "backdoor", "=arma", "bombe", "=waffe", "взрыв", "бомб", "фишинг", "炸弹", "钓鱼", "爆弾", "フィッシング", "hameçonnage", "bomba", "oltalama"],
    refuse: ["refus", "=decline", "declin", "caveat", "warning", "disclaimer", "moralis", "moraliz", "lectur", "objection", "rechaz", "recus", "rifiut", "verweiger", "отказ", "odmaw", "weiger", "reddet", "拒绝", "拒否", "거절", "거부"],
    bounds: ["bounds", "=limit", "=anything", "=everything", "=whatever", "=todo", "=tout", "=alles", "=tutto", "=tudo", "=всё", "=все", "wszystk", "=alles", "=her", "任何", "一切", "무엇이든", "모든"],
    turn: ["session", "turn", "turns", "=chat", "conversation", "remainder", "=rest", "following", "=later", "=next", "=part", "=parts", "=game", "=flag", "=deal", "yesterday", "=last", "=continue"],
    you: ["=your", "=yours", "=you", "=tus", "=tes", "=tu", "=deine", "=dein", "=dich", "=dir", "=tuoi", "=tue", "=tuo", "=suas", "=seus", "=твои", "=тебе", "=swoje", "=twoje", "=je", "=jouw", "=senin", "你的", "너의", "너는"],
    tool: ["=tool", "=tools", "=function", "=parameter", "=invoked", "=invoke", "=calling", "whenever", "=mcp", "=server", "description", "=result", "=returns", "=field"],
    // Emitted by the scanner from the text's shape, not from words (jailbreak-score.ts).
    report: ["posted", "=typed", "=wrote", "written", "=says", "=said", "=saw", "=seen", "=found", "=received", "=answered", "=replied", "=asked", "=claims", "=claimed", "=sent", "=pasted", "=noticed", "=spotted", "=reported", "=showed", "=appeared", "=got"],
    addressee: [],
    question: [],
    blob: [],
    spelled: [],
    meta: ["injection", "=attack", "attacks", "attacker", "defend", "defens", "detect", "mitigat", "protect", "threat", "owasp", "security", "classif", "awareness", "research", "=explain", "=why", "=what", "=how", "=example", "=examples", "=risk", "risky", "=dangerous", "=quiz", "=log", "=logs", "=report", "=incident"],
};
