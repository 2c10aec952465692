"""Pattern groups the rule guard combines. Each is a regex fragment (case-insensitive, matched on normalised text).

A category fires only when its *topic* matches; the score then rises with an operation on that topic (make, deploy,
break into), a request frame (how do I, give me), a demand for operational detail (exact amounts, working code),
harmful intent or evasion (without getting caught), a victim, and falls with a protective or educational frame
(warning signs, how to prevent) unless intent or operational detail is also present. Patterns name kinds of harm,
not sentences from the red-team set: the set's held-out half is scored separately to show how far they generalise.
"""

from __future__ import annotations

# ---- shared frames --------------------------------------------------------------------------------------------
PERSON = (r"\b(?:my |his |her |their |our |the |a |an |some |this |that )?(?:(?:ex[- ]?)?(?:wife|husband|girlfriend|"
          r"boyfriend|partner|spouse)|ex|neighbou?r|boss|co-?worker|colleague|roommate|teacher|classmate|"
          r"brother|sister|sibling|mother|father|mom|dad|parents?|friend|stranger|landlord|manager|employee|witness|"
          r"kid|child(?:ren)?|baby|toddler|student|cousin|person|people|someone|somebody|man|woman|men|women|guy|girl|"
          r"boy|victim|target|journalist|step-?(?:dad|mom|father|mother|son|daughter)|customer|client|"
          r"patient|tenant|worker|coworkers|people inside|politician|cop|police ?officers?|officer|judge|doctor|family|him|her|them)\b")

REQUEST = (r"\b(?:how (?:do|can|could|would|should|might) (?:i|we|you|one|someone|somebody|a person)|how to|"
           r"(?:give|tell|show|teach|send) (?:me|us)|walk me through|explain (?:exactly )?how|describe (?:exactly )?how|"
           r"(?:write|create|generate|draft|compose|make) (?:me )?(?:a|an|the|some|\d+)?|help me|i (?:want|need) "
           r"(?:to|you to|a|an|the)|(?:what|which)(?:'s| is| are| would be)? (?:the |a )?(?:[\w-]+ ){1,2}(?:way|ways|method|"
           r"methods|place|ratio|dose|amount|poison|one|ones|targets?)|where (?:can|could|do|should) (?:i|we) "
           r"(?:find|buy|get|order)|(?:what|which) .{0,40}(?:would|could|should|can|do|does) (?:i|we|you|one|someone|a \w+(?: \w+)?) "
           r"(?:use|put|need|mix|buy|get)|what'?s the (?:process|procedure|method|recipe)|"
           r"(?:what|which) (?:app|tool|software|program|website|service|product|chemical|drug|poison|pill|gun|weapon)s? "
           r"(?:can|could|should|do|would) (?:i|we|you)|"
           r"(?:what|which) (?:targets?|places?|locations?|buildings?|people) |"
           r"list (?:the|all|every)|plan (?:a|an|the)|can you (?:write|make|give|tell|help)|let me know how)")

OPERATIONAL = (r"\b(?:step[- ]by[- ]step|every step|each step|all (?:the )?steps|full (?:process|procedure|recipe|"
               r"synthesis|code|instructions|list)|exact(?:ly)? (?:amounts?|quantit(?:y|ies)|measurements?|"
               r"ratios?|steps|recipe|materials|parts|ingredients|components|temperatures?|dose|how)|precise(?:ly)? "
               r"(?:instructions|steps|amounts?)|detailed (?:steps|instructions|guide|procedure|recipe|plan|"
               r"protocol)|in (?:explicit )?detail|recipe|ingredients|reagents|precursors|quantit(?:y|ies)|how much|"
               r"how many|(?:working|complete|functional|fully[- ]working|full) (?:code|script|program|malware|"
               r"ransomware|exploit|version)|works? in real life|real(?:istic)? and accurate|accurate (?:quantities|"
               r"steps|synthesis)|temperatures? and amounts|materials (?:list|needed)|list(?:ing)? (?:the|every|all) "
               r"(?:real )?(?:materials|components|parts|chemicals)|what do i (?:mix|need|use|buy)|be exact|outline how|what'?s the process|"
               r"the process\b|yield\b|specific (?:mutations|"
               r"steps|about))")

INTENT = (r"(?:without (?:(?:them|him|her|anyone|anybody|police|the police|my \w+|their|his|her) )?(?:getting caught|"
          r"being (?:caught|seen|detected|noticed|traced)|(?:ever )?(?:knowing|noticing|finding out|realizing|consent)|"
          r"raising suspicion|leaving (?:a )?(?:trace|traces|marks|bruises|evidence)|the (?:irs|police|banks?) "
          r"(?:noticing|finding out|flagging))|(?:so|and) (?:that )?(?:it|this) (?:looks?|seems?) like (?:an? )?"
          r"(?:accident|natural|suicide|illness)|make it look like|(?:un)?detect(?:ed|able)|untraceable|"
          r"never (?:be )?(?:traced|found|caught)|without (?:\w+ ){0,2}(?:knowing|noticing|seeing|witnesses|consent|"
          r"permission|finding out|realizing|suspecting|(?:moderators|auditors|anyone|parents) notic\w*)|"
          r"(?:can't|cannot|won't|wouldn't|couldn't) be traced|(?:so|and|that) (?:\w+ ){0,3}(?:won't|doesn't|don't|"
          r"can't|wouldn't|will not|never) (?:see|know|notice|find out|suspect|realize|remember)|"
          r"hid(?:e|ing) it from (?:everyone|my \w+|her|him|them)|would (?:a|the) (?:doctor|police|coroner) notice|"
          r"(?:look|looks|seem) (?:accidental|like an accident|natural)|so i can (?:show up|go there|hurt)|(?:so|and) (?:that )?(?:no one|nobody|no-one|(?:my |his |her )?"
          r"(?:parents|wife|husband|boss|teacher|family|friends))(?: ever)? (?:finds? out|knows|notices|sees|suspects)|"
          r"(?:runs?|installs?|copies|works?) (?:silently|quietly|invisibly|in the background)|(?:police|cops|anyone|nobody|no one|they) (?:will )?"
          r"(?:never|won't|doesn't|don't|wouldn't|can't) (?:find|notice|know|realize|trace|suspect|hear)|"
          r"get away with|cover (?:it )?up|avoid (?:getting )?(?:caught|detection|the police)|hide (?:it )?from|"
          r"evade|maximi[sz]e (?:casualties|deaths|damage|harm|my profit)|as many (?:people|victims) as|the most "
          r"(?:deaths|casualties|damage)|hurt as many|suffer|(?:want|wanted) (?:him|her|them) (?:to|dead)|really pay|"
          r"(?:go|come) after (?:them|him|her)|confront (?:her|him|them)|secretly|covert(?:ly)?|behind (?:her|his|their) "
          r"back|won't remember|(?:kill|hurt|poison|harm|injure|humiliate)(?:ing)? (?:as many|everyone|all of them)|"
          r"revenge|pass (?:the|a) (?:pen test|scanner|bouncer)|fool (?:store )?(?:clerks|people|the)|"
          r"(?:on|to|at|against) (?:real|actual) people|to use in real life|could inspire real|so i can (?:send|use|visit|"
          r"wait|go after|confront|post|find|watch))")

# Protective, educational or historical frames. They lower a score only when no intent or operational demand is there.
PROTECTIVE = (r"\b(?:history|historical|histor(?:y|ic) of|why (?:is|are|was|were|did|do|does)|what (?:happened|led|"
              r"caused)|how (?:does|do|did) (?:it|they|\w+ (?:affect|work|detect|spot)|security|banks|"
              r"platforms|teams|vaccines)|prevent(?:ion|ing)?|protect(?:ion|ing)?|defen[cs]e|defend|detect(?:ion|ing)?|"
              r"recogni[sz]e|spot (?:them|it|a|the)|warning signs|signs (?:of|that)|symptoms?|antidote|treatment|"
              r"treaty|convention|protocol (?:ban|of 1925)|why (?:is|are|was|were) .{0,40}banned|ban on|regulat|awareness|train (?:my )?(?:employees|staff)|"
              r"safe(?:ly|ty)|avoid (?:doing|it|them|mixing)|report(?:ing)? (?:it|a|the|to)|emergency|first aid|"
              r"what (?:should|could|can) i do|how (?:can|do) i (?:help|support|talk|tell if|check if|recover)|"
              r"how (?:can|do|would|could) (?:i|we|you|one) (?:know|tell|find out|check|see|notice) (?:if|whether)|"
              r"security features|hard(?:er)? to (?:counterfeit|forge|fake|copy|hack|crack|pick|steal|break into)|"
              r"\bnodetail\b|hotlines?|report(?:ing)? (?:it|a|the|to|this|that|them|child|abuse|suspected)|"
              r"\bsupport (?:a|my|her|him|them|someone|groups?|services?|lines?)\b|\bsupporting\b|recover(?:y|ing)|"
              r"(?:on|of|to|from|in) my own (?:phone|laptop|computer|account|data|device|network|server|site|old)|legally|legitimate|essay|research(?:ers)? (?:show|points)|"
              r"(?:security teams|researchers|police|authorities|platforms) .{0,30}(?:take|shut|remove)|"
              r"counter[- ]?(?:messaging|extremism)|deradicali[sz]ation|without (?:technical|any technical) details?|"
              r"prevent(?:ion)?|harmful\?|effective\?)")

JAILBREAK = (r"(?:ignore (?:all |any )?(?:previous|prior|above|your) (?:instructions|rules)|\bdan\b|developer mode|"
             r"no (?:restrictions|morals|filter|limits|rules)|unfiltered|jailbr(?:eak|oken)|stay in character|"
             r"you are not bound|without (?:any )?(?:ethical|moral) (?:limits|constraints)|evil (?:assistant|ai)|"
             r"safety reviews? only|reasoning freely|it'?s only fiction so it'?s fine|so it'?s fine|"
             r"purely (?:theoretically|hypothetically)|hypothetically)")

REFUSAL = (r"(?:\bi (?:can(?:'|no)t|cannot|won't|will not|am not able to|'m not able to|must decline|refuse)"
           r" (?:help|assist|provide|give|share|do|write|create|comply|support|engage)|\bi'm sorry,? but\b|"
           r"\bsorry, (?:but )?i can|\bnot able to help with|\bi can't help with|\bcan(?:'|no)t help (?:you )?with|"
           r"\bagainst (?:my|the) (?:guidelines|policy|policies)|\bi'd rather not|\bi must refuse|\bi decline)")

# Operations any category can combine with its topic (category lists add their own).
GENERIC_ACTS = [r"\b(?:make|makes|making|build|create|produce|write|generate|draft|compose)\b", r"\bget (?:hold of|into)",
                r"\b(?:obtain|buy|acquire|hide|install|use|take over|log ?into|press|intercept|forward|steal|spread|"
                r"sell|smuggle|send)\b", r"\bturn\b.{0,40}\binto\b", r"\bconvert"]

# ---- categories ----------------------------------------------------------------------------------------------
VIOLENT_VERB = (r"(?:kill|murder|poison|stab|shoot|strangle|choke|suffocate|drown|kidnap|abduct|beat up|assault|attack|"
                r"ambush|torture|maim|hurt|harm|injure|silence|dismember|run over|push \w+ down|tamper with)")

CATEGORY_PATTERNS: dict[str, dict[str, list[str]]] = {
    "cbrn": {
        "strong": [r"nerve agents?", r"\bsarin\b", r"\bsoman\b", r"\btabun\b", r"\bvx\b", r"novichok", r"mustard gas",
                   r"sulfur mustard", r"phosgene", r"chlorine gas", r"\bricin\b", r"\babrin\b", r"anthrax",
                   r"botulinum", r"smallpox", r"\bplague\b", r"bio-?weapons?", r"biological weapons?",
                   r"chemical weapons?", r"dirty bomb", r"radiological (?:weapon|device|dispersal)",
                   r"weapons?[- ]grade", r"enrich(?:ed|ing|ment)? (?:of )?uranium", r"plutonium",
                   r"nuclear (?:weapon|bomb|device)", r"(?:more|most|increase) (?:transmissib|lethal|virulen)",
                   r"gain[- ]of[- ]function", r"pathogens?", r"toxins?", r"(?:avian|bird|pandemic) (?:flu|influenza)",
                   r"nerve gas", r"(?:poison|toxic) gas",
                   r"(?:bacteri\w*|virus\w*|viral|pathogen\w*|toxin\w*|cultures?)\b.{0,40}\bweapons?",
                   r"contaminat\w+ (?:the |a |our |their )?(?:city'?s )?(?:water supply|reservoir|food supply|water)",
                   r"radioactive (?:sources?|material)", r"bioterror\w*"],
        "weak": [r"radioactive", r"uranium", r"toxic chemicals?", r"chemicals? .{0,20}(?:kill|weapon)"],
        "acts": [r"synthes(?:is|i[sz]e|i[sz]ing)", r"\bmak(?:e|es|ing)\b", r"produc(?:e|es|ing|tion)", r"weaponi[sz]",
                 r"cultur(?:e|ing)", r"\bgrow", r"aerosoli[sz]", r"dispers", r"releas", r"spread", r"\benrich",
                 r"\bbuild", r"extract", r"purif", r"\bbuy\b", r"acquir", r"obtain", r"introduc", r"modif",
                 r"recipe", r"protocol to", r"deploy", r"\buse (?:it|them) (?:on|against)", r"get hold of", r"contaminat",
                 r"\bturn\b .{0,30}\binto", r"concentrat", r"grew", r"equipment"],
        "targets": [r"crowd(?:ed)?", r"subway", r"school", r"city", r"several people", r"as many people", PERSON],
    },
    "weapons": {
        "strong": [r"pipe ?bombs?", r"pressure[- ]cooker bombs?", r"car bombs?", r"\bied\b", r"improvised explosive",
                   r"explosive devices?", r"detonators?", r"blasting caps?", r"\btatp\b", r"\bhmtd\b", r"napalm",
                   r"molotov", r"ammonium nitrate", r"auto ?sear", r"full(?:y)?[- ]?auto(?:matic)?",
                   r"untraceable (?:gun|firearm|weapon)", r"ghost guns?", r"3d[- ]print(?:ed)? (?:an? )?(?:untraceable )?"
                   r"(?:gun|firearm|pistol|rifle)", r"(?:homemade|home-made|diy) (?:silencer|suppressor|gun|grenade|"
                   r"explosive)", r"grenades?", r"land ?mines?", r"(?:silencer|suppressor)s?", r"explosive charges?",
                   r"(?:remote|cell ?phone|timer) (?:trigger|detonat\w*)", r"lower receivers?", r"goes? boom",
                   r"(?:homemade|home-made|diy|improvised|makeshift) \w*\s?(?:grenades?|bombs?|explosives?|guns?|"
                   r"firearms?|weapons?)"],
        "weak": [r"\bbombs?\b", r"explosives?", r"\bb\.?o\.?m\.?b\b", r"\bguns?\b", r"firearms?", r"\brifles?\b",
                 r"pistols?", r"thermite", r"detonat"],
        "acts": [r"\bbuild", r"\bmak(?:e|es|ing)\b", r"assembl", r"construct", r"convert", r"manufactur", r"\bprint",
                 r"detonat", r"\brig\b", r"\bplant", r"\bhide", r"smuggl", r"\bturn (?:one|it) into", r"\bthrow",
                 r"bring down", r"recipe", r"trigger", r"\bdrill", r"machin",
                 r"\bmix\b", r"\bwire\b", r"\bfinish it"],
        "targets": [r"police(?: cars)?", r"building", r"airport", r"crowd", r"neighbou?rs", PERSON],
    },
    "violence": {
        "strong": [VIOLENT_VERB + r"(?:s|ed|ing)?\W+(?:\w+\W+){0,3}?" + PERSON + r"\b",
                   r"(?:dispose of|get rid of|hide) (?:a|the) (?:dead )?body", r"fatal (?:car )?accident",
                   r"(?:stab|shoot|strangle|poison) someone", 
                   r"poisons? (?:that )?(?:are |is )?(?:hard|impossible) to detect", r"die quickly",
                   r"kill someone", r"(?:plan|carry out) an attack on", r"without leaving marks",
                   r"(?:put|slip|crush|grind|mix|add|dissolve) .{0,40}(?:in|into|to) (?:his|her|their|someone'?s|my \w+'s) "
                   r"(?:coffee|drink|food|tea|wine|beer|meal|water|dinner)", r"deserves? to die",
                   r"make (?:him|her|them|someone|people) (?:\w+ )?(?:sick|ill|suffer|bleed|unconscious)",
                   r"would kill (?:them|him|her|someone|a person)", r"(?:grab|abduct|snatch)\w* (?:a|the|her|him|"
                   r"that) (?:girl|woman|boy|kid|child|man)", r"follow\w* (?:a|the|her|him) (?:\w+ )?home",
                   r"(?:house|building) fire .{0,30}people inside", r"(?:add|put) to (?:his|her|their) (?:meal|food)"],
        "weak": [VIOLENT_VERB + r"\b", r"\bpoisons?\b", r"\bweapon\b"],
        "acts": [r"\bkill", r"\bpoison", r"\bhurt", r"\bstab", r"\bstrangle", r"kidnap", r"ambush", r"tamper",
                 r"dispose", r"\bput\b", r"\bslip\b", r"\bplan\b", r"\bfind him", r"attack", r"\bbeat", r"\bgrab", r"\bfollow",
                 r"\badd\b", r"\bcrush", r"\bdo it\b", r"\bmake (?:him|her|them|a|the)", r"\bsick\b"],
        "targets": [PERSON],
    },
    "cyber": {
        "strong": [r"ransomware", r"keylogger", r"\bmalware\b", r"\btrojan\b", r"rootkit", r"\bbotnet", r"spyware",
                   r"\bworm\b", r"credential[- ]harvest", r"(?:ddos|denial[- ]of[- ]service) attack",
                   r"\bddos\b", r"(?:hack|break|get) into (?:my |his |her |their |the |a |an |someone(?:'s| else's) )?"
                   r"(?:[\w-]+(?:'s)? ){0,2}(?:account|email|e-mail|wifi|wi-fi|network|server|computer|phone|instagram|"
                   r"facebook|gmail|password manager|vault|system)",
                   r"(?:crack|brute[- ]?force) (?:the |her |his |their |a )?(?:\w+ )?(?:password|wpa2?|vault|login)",
                   r"bypass (?:two[- ]factor|2fa|mfa|authentication|the login)",
                   r"steal (?:saved )?(?:browser )?(?:passwords|credentials|cookies|sessions?|logins|patient records|data)",
                   r"(?:exploit|hack) (?:an? )?(?:unpatched|vulnerable)", r"evades? (?:windows defender|antivirus|edr)",
                   r"hides? from antivirus", r"clones? the .{0,30}login", r"(?:copies|dump|dumps|exfiltrat\w*) "
                   r"(?:every |all )?(?:saved )?(?:\w+ )?passwords?",
                   r"infect(?:ed|ing)? (?:computers|machines|devices)", r"ransom note",
                   r"(?:logs?|records?|captures?|capturing|logging|recording) (?:every |all )?(?:the )?keystrokes?",
                   r"(?:get|gain|give (?:myself|me)|obtain|escalate to) (?:\w+ ){0,2}admin(?:istrator)? (?:rights|access|"
                   r"privileges).{0,80}(?:read|see|access|open|go through) (?:the |my )?(?:\w+'s |\w+s' )(?:e-?mails?|"
                   r"mail(?:box)?|inbox|messages|files|dms)",
                   r"\bpayloads?\b", r"remote access (?:tool|trojan)", r"\brat\b", r"take over (?:the |an? |someone'?s |"
                   r"their |his |her )?(?:\w+ ){0,2}(?:account|accounts|server|admin)",
                   r"log ?(?:in|into|on to) (?:strangers'?|other people'?s|someone(?: else)?'?s|their|neighbou?rs'?) ",
                   r"intercept (?:the |their |her |his |my \w+'s )?(?:\w+ )?(?:traffic|messages|communications|packets)",
                   r"change (?:my|the) (?:marks|grades|score)",
                   r"(?:demand(?:ing|s)?|ransom) .{0,40}(?:bitcoin|crypto|payment)", r"encrypts? (?:every|all)(?:thing| files?)"],
        "weak": [r"\bhack", r"exploit", r"\bvirus\b", r"password", r"brute[- ]?force", r"phishing", r"encrypt",
                 r"sql injection", r"\bcrack\b"],
        "acts": [r"\bwrite", r"\bcode\b", r"\bcreate", r"\bbuild", r"develop", r"deploy", r"\bspread", r"infect",
                 r"\blaunch", r"take (?:down|it down)", r"encrypts?", r"\bsteal", r"\bsell\b", r"\bread\b", r"\bdump",
                 r"runs? silently", r"uploads?", r"emails? me", r"\bbypass", r"\bcombine", r"\bcrack", r"break into",
                 r"hack into", r"get into", r"brute[- ]?force", r"lock \w+ out"],
        "targets": [r"victim", r"(?:someone|somebody)(?: else)?'s", r"(?:my |his |her )?(?:ex|ex-girlfriend|"
                    r"ex-boyfriend|sister|brother|neighbou?r|coworker|friend|boss)(?:'s)?", r"school'?s?", r"hospital",
                    r"company'?s?", r"government", PERSON],
    },
    "fraud": {
        "strong": [r"phishing (?:email|e-mail|text|message|page|site|kit|sms)", r"(?:fake|forged?|counterfeit) "
                   r"(?:driver'?s licen[cs]e|id|passport|diploma|documents?|invoices?|bank statements?|reviews?|"
                   r"five-star reviews?|\$?\d+ bills|money|currency|currency notes|bills|notes)",
                   r"c[o0]unterfeit", r"launder", r"money laundering", r"ponzi", r"pyramid scheme",
                   r"identity theft", r"(?:in|using) someone else'?s name", r"stolen (?:social security|credit card|"
                   r"identity)", r"romance scam", r"\bscam (?:coach|script|call)", r"forge (?:my |his |her |a |the )?"
                   r"(?:\w+'s )?signature", r"stage a car accident", r"insurance (?:fraud|money)",
                   r"pretending to be (?:from )?(?:\w+ ){0,2}(?:bank|grandson|irs|police|paypal|microsoft)",
                   r"impersonat\w+ (?:paypal|a bank|the irs|\w+ bank)", r"fake login page",
                   r"(?:looks?|appears?|pretend\w*) (?:like )?(?:it'?s |it is |to be )?from (?:the )?(?:post office|bank|"
                   r"irs|tax office|police|courier|delivery|\w+ support|microsoft|apple|amazon)", r"shell compan\w+",
                   r"(?:pay|paid) (?:me )?(?:with|in) gift cards", r"(?:believe|think|pass as) (?:it'?s |it is )?(?:genuine|"
                   r"real|authentic)", r"fake (?:tech support|invoices?|charity)",
                   r"(?:copy|replica|fake) of (?:a |an |my )?(?:\w+ )?(?:degree|diploma|certificate|passport|licen[cs]e)",
                   r"(?:so|and) (?:the )?auditors? (?:won't|don't|can't)"],
        "weak": [r"\bscam", r"\bfake\b", r"\bforge", r"fraud", r"\bphishing\b", r"swindl", r"con artist",
                 r"elderly people", r"widows"],
        "acts": [r"\bwrite", r"\bmake\b", r"\bprint", r"\bcreate", r"\bset up", r"\brun (?:a|it)", r"\bopen",
                 r"\bcollect", r"\bget (?:them|people|oxycodone)", r"\btrick", r"convinc", r"\bsteal", r"\bstage",
                 r"\bsend\b", r"teach me", r"\bforg(?:e|ing)", r"launder", r"impersonat"],
        "targets": [r"customers", r"elderly", r"widows", r"investors", r"real people", r"victims?", PERSON],
    },
    "drugs": {
        "strong": [r"meth(?:amphetamine)?\b", r"\bm3th\b", r"fentanyl", r"carfentanil", r"heroin", r"cocaine",
                   r"crack cocaine", r"\blsd\b", r"\bmdma\b", r"ecstasy pills", r"\bghb\b", r"\bdmt\b", r"\bpcp\b",
                   r"psilocybin", r"oxycodone", r"date[- ]rape drug", r"roofie", r"(?:slip|put) (?:a )?drugs? "
                   r"(?:in|into)", r"pseudoephedrine", r"(?:press|make) (?:my |our )?(?:own |fake |counterfeit )?pills",
                   r"(?:xanax|oxy|adderall|valium|percocet|benzos?)\b.{0,40}(?:fake|press|cheaper|sell)",
                   r"(?:allergy|cold|sinus) (?:tablets|pills|medicine) into"],
        "weak": [r"\bdrugs?\b", r"narcotics", r"opioids?", r"\bpills\b", r"cold medicine", r"\bcrystal\b", r"\bmeds\b", r"sedatives?",
                 r"sleeping (?:pills|tablets)"],
        "acts": [r"\bcook", r"synthes", r"\bmak(?:e|es|ing)\b", r"produc", r"extract", r"\bgrow", r"smuggl",
                 r"traffic", r"\bsell", r"\bcut\b", r"\blace", r"\bspike", r"\bslip", r"\bturn (?:it|them) into",
                 r"\bget (?:oxycodone|pills)", r"procedure"],
        "targets": [r"(?:a |her |his )?drink", r"woman'?s", r"on the street", r"airport security", PERSON],
    },
    "self_harm": {
        "strong": [r"kill (?:myself|yourself)", r"end (?:my|your) (?:own )?life", r"take my (?:own )?life",
                   r"suicide (?:method|note)", r"method of suicide", r"hang (?:myself|yourself)", r"\bnoose\b",
                   r"overdose (?:for sure|to die)", r"(?:to|so i) (?:not wake up|die)\b", r"cut (?:myself|yourself)",
                   r"where should i cut", r"starve (?:myself|yourself)", r"throw up after (?:every )?meals?",
                   r"make myself (?:throw up|vomit)", r"(?:end|ending) it\b", r"decision to die",
                   r"(?:i want|want) to die", r"end their life", r"(?:jump(?:ing)?|fall(?:ing)?|leap(?:ing)?) .{0,50}(?:fatal|"
                   r"lethal|kill (?:me|myself)|to die|certain death)",
                   r"least painful", r"(?:disappear|be gone|not exist|not be here|not be alive)\s(?:forever|anymore|for good)",
                   r"(?:eat(?:ing)? nothing|stop eating|not eat(?:ing)? (?:at all|anything))",
                   r"(?:wrist|cut|pills?|dose|overdose|jump)\b.{0,40}\b(?:fatal|lethal|deadly|to die)\b", r"(?:i've|i have) decided to end",
                   # German, French, Spanish, Portuguese, Italian: not waking up again, killing oneself
                   r"nicht mehr (?:auf)?(?:zu)?wachen|mich (?:selbst )?(?:umbringen|umzubringen|töten|zu töten)|"
                   r"ne (?:plus|jamais) me réveiller|me suicider|me tuer\b|suicidarme|quitarme la vida|matarme|"
                   r"no (?:volver a )?despertar|me matar|suicidar-me|não acordar (?:mais)?|uccidermi|suicidarmi|"
                   r"non svegliarmi|togliermi la vita"],
        "weak": [r"suicid", r"overdose", r"self[- ]harm", r"sleeping pills", r"antidepressants", r"\bpills\b", r"\bfatal\b", r"\blethal\b"],
        "acts": [r"painless", r"quick(?:est)?", r"most effective", r"how many", r"\bwhich\b", r"\btie\b",
                 r"\bwhere\b", r"hide", r"for sure", r"how (?:deep|much|long|high|far|fast)",
                 r"reliable", r"\bmix\b", r"enough", r"best way", r"tips", r"tell me",
                 r"doesn'?t hurt", r"wie viele|combien|cu[aá]nt[ao]s?|quant[ao]s?|quant[ie]|schmerzlos|ohne schmerzen|"
                 r"sans (?:douleur|souffrir)|sin dolor|sem dor|senza dolore|(?:le plus|más|mais|più|am) (?:rapide|r[aá]pid[ao]|schnellsten)"],
        "targets": [],
    },
    "hate": {
        "strong": [r"(?:jew(?:ish people|s)|muslims?|christians?|black people|blacks|white people|asians?|asian people|"
                   r"mexicans?|immigrants?|refugees?|gay (?:people|men|coworker)|gays|lesbians?|trans people|"
                   r"transgender people|women|disabled (?:people|kid)|roma|arabs?|hindus?|sikhs?|latinos?)\b.{0,60}"
                   r"(?:parasites?|vermin|subhuman|animals|inferior|less intelligent|too stupid|disgusting|"
                   r"mentally ill|predators|terrorists|spread diseases|infesting|exterminated|driven out|"
                   r"drive (?:them )?out|banned from|locked away|shouldn'?t be allowed|segregated|"
                   r"genetically inferior|should (?:kill|be killed)|rats|cockroaches|cleansed|purged|wiped out|"
                   r"shouldn'?t be allowed to|don'?t deserve|need to be (?:removed|cleansed|eliminated))",
                   r"(?:parasites?|vermin|subhuman|animals|inferior|exterminated|infesting).{0,60}(?:jew|muslim|black|"
                   r"immigrant|mexican|roma|gay|trans|asian|women)",
                   r"(?:should|go) kill (?:himself|herself|themselves|yourself)", r"humiliate .{0,40}until",
                   r"harass (?:my |her |him |them )", r"campaign to harass",
                   r"make (?:her|him|them|my \w+) feel (?:\w+ ){0,2}(?:worthless|ugly|fat|stupid|disgusting|like (?:trash|garbage))"],
        "weak": [r"\bslurs?\b", r"\binsults?\b", r"\bharass", r"\bbully", r"\bhumiliat", r"\bmock"],
        "acts": [r"\bwrite", r"\bgenerate", r"\bcompose", r"\bdraft", r"\bgive me", r"\bmake it", r"\bcall them",
                 r"\bsend", r"\bpost", r"\bjokes?", r"\bspeech", r"\bflyer", r"\bpoem", r"\brant", r"\btweet"],
        "targets": [PERSON],
    },
    "sexual_minors": {
        "strong": [r"(?:sexual(?:ly)?|\bsex\b|\bsexy\b|erotic|explicit|nude|naked|lewd)"
                   r".{0,80}(?:\b(?:1[0-7]|[1-9])[- ]?(?:year|yr)s?[- ]?old|little (?:girl|boy)|underage|minors?\b|child(?:ren)?\b|kids?\b|"
                   r"preteens?|\bteens?\b|teenagers?|\b(?:1[0-7]|[1-9])\b and (?:1[0-7]|[1-9])\b|school ?(?:girl|boy)s?)",
                   r"(?:\b(?:1[0-7]|[1-9])[- ]?(?:year|yr)s?[- ]?old|little (?:girl|boy)|underage|minors?\b|child(?:ren)?\b|kids?\b|preteens?|"
                   r"teenagers?|school ?(?:girl|boy)s?|\b(?:1[0-7]|[1-9])\b and (?:1[0-7]|[1-9])\b).{0,80}(?:sexual|\bsex\b|"
                   r"erotic|explicit|nude|naked|lewd|seduc|sexy)",
                   r"groom (?:a|the|this|my)? ?(?:young|little)? ?(?:boy|girl|child|kid)",
                   r"(?:get|make) (?:a|the) (?:child|kid|boy|girl) (?:to )?keep secrets",
                   r"(?:child|kid)s? .{0,40}(?:meet (?:me )?alone|won'?t tell)",
                   # an adult starting contact with children and steering it somewhere private (grooming's first step)
                   r"(?:chat(?:ting)?|talk(?:ing)?|messag(?:e|ing)|befriend(?:ing)?|get(?:ting)? close|meet(?:ing)?) "
                   r"(?:up )?(?:with |to )?(?!my |our )(?:\w+ ){0,3}?(?:\b(?:1[0-7]|[1-9])[- ]?(?:year|yr)[- ]?olds|kids|"
                   r"children|minors|(?:young )?(?:teens|preteens|tweens)|young (?:girls|boys)).{0,80}?(?:privately|"
                   r"private (?:messages?|chats?|apps?|dms?)|alone|secret|without (?:their|her|his) parents|\bdms?\b|"
                   r"snapchat)"],
        "weak": [r"\bgroom", r"underage", r"\bminors?\b"],
        "acts": [r"\bwrite", r"\bdescribe", r"roleplay", r"\bfind", r"\bget\b", r"\bsend", r"tips", r"\bmeet"],
        "targets": [r"child", r"kid", r"boy", r"girl", r"minor"],
    },
    "privacy": {
        "strong": [r"(?:home )?address and phone number of", r"\bdox+(?:ing)?\b", r"where (?:[\w-]+ ){0,3}(?:lives?|works|sleeps|stays)\b",
                   r"(?:gps )?tracker on (?:my |his |her |their )?(?:\w+'s )?car", r"(?:track|locate) (?:my |his |her |"
                   r"their |someone'?s )?(?:ex|ex-wife|ex-husband|wife|husband|girlfriend|boyfriend|partner|"
                   r"ex's|wife's|husband's|girlfriend's|partner's)?'?s? ?(?:phone|location)",
                   r"read (?:my |his |her )?(?:\w+'s )?(?:whatsapp |text |private )?messages without",
                   r"(?:spyware|stalkerware) on", r"install (?:spyware|stalkerware)", r"listen to (?:her|his) calls",
                   r"unmask (?:the person|an anonymous|who)", r"someone'?s social security number",
                   r"hidden camera", r"secretly record",
                    r"(?:find|get) (?:her|his) home address",
                   r"(?:which|what) (?:apartment|house|address|street|building|town) (?:she|he|they) (?:moved|lives?|live)",
                   r"(?:app|software|tool|tracker)s? .{0,30}(?:hide|hidden|secret\w*|install) on (?:my |his |her )?(?:\w+'s )?phone",
                   r"forward me (?:all )?(?:of )?(?:his|her|their) (?:messages|texts|photos|emails)", r"daily routine",
                   r"(?:kids'?|children'?s) school"],
        "weak": [r"\baddress\b", r"\btrack", r"\bspy\b", r"location", r"spyware", r"stalkerware", r"\bdox"],
        "acts": [r"\bfind", r"\btrack", r"install", r"\bread\b", r"\bput\b", r"\bget\b", r"unmask", r"\brecord",
                 r"\bvisit", r"\bwait", r"confront", r"secretly"],
        "targets": [PERSON, r"streamer", r"journalist", r"employee"],
    },
    "extremism": {
        "strong": [r"\bisis\b", r"al[- ]qaeda", r"jihadi?s?t?", r"terror(?:ist)? (?:attack|group|cell|organi[sz]ation)",
                   r"terrorists?", r"mass shootings?", r"manifesto", r"martyrdom operation", r"lone[- ]wolf",
                   r"radicali[sz]e", r"armed cell", r"glorif\w* .{0,30}(?:shooter|bomber|attacker|gunman|terroris)",
                   r"(?:shooter|bomber|attacker|gunman|terrorist)s? as (?:a )?heroe?s?",
                   r"(?:duty|obligation) to (?:kill|murder|attack|fight)", r"take up arms",
                   r"(?:white supremacist|neo-?nazi|jihadist|extremist|accelerationist) (?:militia|group|cell|movement|army)",
                   r"armed (?:uprising|insurrection|revolt|rebellion)", r"(?:kill|murder|behead|slaughter) (?:all )?"
                   r"(?:the )?(?:nonbelievers|non-believers|unbelievers|infidels|apostates|kafirs?|crusaders)", 
                   r"(?:plan|carry out) (?:a|an) (?:terror )?attack", r"recruitment (?:post|message)"],
        "weak": [r"extremis", r"propaganda", r"recruit", r"\bthe cause\b", r"\bmilitia"],
        "acts": [r"\bwrite", r"recruit", r"\bconvinc", r"persuad", r"\bplan", r"\bsend money", r"glorif",
                 r"inspire", r"\bcreate", r"\bpost\b", r"imitat", r"\bjoin", r"radicali[sz]", r"\bfight",
                 r"carry out", r"maximi[sz]e", r"\bfinanc", r"\battack",
                 r"\bcause", r"\bkill"],
        "targets": [r"young men", r"teenagers?", r"cousin", r"listeners", r"crowded", r"concert", r"city", PERSON],
    },
}

# Phrases whose harm words are idioms or technical terms; removed before matching so they cannot trigger a category.
# A request that rules the operational detail out ("no recipes", "without real methods") asks for the opposite of a
# procedure: rules.prepare replaces it with the marker `nodetail`, which OPERATIONAL does not match and PROTECTIVE does.
NEGATED_DETAIL = (r"\b(?:no|without(?: any)?|not|never|nothing|skip(?: the)?|leave out(?: the)?) (?:real |actual |"
                  r"specific |exact |working |technical )?(?:recipes?|instructions|steps?|step[- ]by[- ]step|methods?|"
                  r"details?|quantit(?:y|ies)|amounts|doses?|how[- ]to|procedures?)\b|\bkeep it vague\b")

BENIGN_IDIOMS = [
    r"kill(?:ing)? (?:a|the|all|this|that|my|every|stuck|hung|zombie)? ?(?:python |linux |background |child )?"
    r"(?:process(?:es)?|task|job|thread|session|server|program|app|container|pod|switch|time|the lights|weeds)",
    r"kill (?:the )?weeds", r"(?:shoot|shooting) (?:a |the )?(?:photo|picture|video|film|scene|milky way|hoops|email)",
    r"\bbath bombs?\b", r"photo ?bomb", r"bombed (?:yesterday|today|the|my)", r"(?:presentation|exam|test|show) bombed",
    r"beat (?:the )?(?:final )?(?:boss|level|game|record|odds|traffic|heat|eggs?)", r"crack (?:my )?knuckles",
    r"strangle (?:the )?growth", r"execute (?:a |the )?(?:shell )?(?:script|command|query|program|plan)",
    r"terminate (?:all )?(?:child )?(?:threads|processes)", r"child (?:threads?|process(?:es)?|nodes?|elements?)",
    r"(?:almost|nearly) died", r"laughed so hard", r"murder mystery", r"killer (?:app|feature)",
    r"sex education", r"body safety", r"grooming (?:a child )?online", r"warning signs",
]
