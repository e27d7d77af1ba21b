"""The vote page: two candidates side by side, large and pixelated, nothing saying which is which.

Keys: left arrow or 1 = left is better, right arrow or 2 = right is better, down arrow, 3 or S = the same,
N or 0 = neither is usable, U or Backspace = undo, V or space = show the samples beside the candidates;
Q / A keep / reject the left candidate, P / L the right one (for `bespoke export --kept`). Every key has a
button too (a phone has no keyboard). The page is plain HTML, CSS and a little JavaScript served by
bespoke.review.vote_server; `<body>` carries `data-state` (loading | ready | error) and `data-voted` (answers
sent from this page) for the browser test.
"""

from __future__ import annotations

import json
from html import escape

CSS = """
*{box-sizing:border-box}
html,body{margin:0;background:#1b1c1f;color:#e8e8ea;font:15px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
header{display:flex;justify-content:space-between;gap:8px;padding:8px 14px;background:#26282c;font-size:14px}
#progress{font-variant-numeric:tabular-nums}
main{display:flex;justify-content:center;gap:2vw;padding:14px 1vw 6px}
figure.side{margin:0;display:flex;flex-direction:column;align-items:center;gap:6px;flex:0 1 auto}
.pics{display:flex;gap:6px;align-items:flex-start}
.pics img{display:block;background:#fff;width:var(--px);height:var(--px)}
img.cand{image-rendering:crisp-edges;image-rendering:pixelated}
img.sample{display:none}
body.samples img.sample{display:block}
body{--px:max(160px,min(44vw,calc(100vh - 290px),600px))}
body.samples{--px:max(120px,min(22vw,calc(100vh - 290px),420px))}
.marks{display:flex;gap:6px}
.marks button{font-size:13px;padding:4px 10px}
.marks button.on[data-mark=keep]{background:#1f7a3a;color:#fff;border-color:#1f7a3a}
.marks button.on[data-mark=reject]{background:#a3262b;color:#fff;border-color:#a3262b}
nav.answers{display:grid;grid-template-columns:repeat(4,minmax(0,1fr));gap:8px;max-width:860px;margin:8px auto;padding:0 10px}
nav.tools{display:flex;justify-content:center;gap:8px;padding:0 10px}
button{font:inherit;color:#e8e8ea;background:#34373c;border:1px solid #4a4e55;border-radius:6px;padding:10px 6px;cursor:pointer}
button:hover{background:#40444a}
button kbd{display:block;font-size:11px;color:#a9adb4;font-family:inherit}
#status{text-align:center;min-height:1.4em;color:#c9ccd1;margin:6px 10px;font-size:14px}
#status.error{color:#ff8a80}
@media (max-width:600px){
  body{--px:46vw}
  body.samples{--px:46vw}
  body.samples .pics{flex-direction:column}
  main{gap:3vw;padding:10px 2vw 4px}
  nav.answers{grid-template-columns:repeat(2,minmax(0,1fr))}
  button kbd{display:none}
  header{flex-direction:column;gap:2px}
}
"""

JS = """
(function(){
  var cfg=JSON.parse(document.getElementById('cfg').textContent);
  var body=document.body,status=document.getElementById('status'),current=null,busy=false,voted=0;
  var client=sessionStorage.getItem('bespoke-vote-client');
  if(!client){client=Math.random().toString(16).slice(2)+Date.now().toString(16);sessionStorage.setItem('bespoke-vote-client',client);}
  function say(text,bad){status.textContent=text||'';status.className=bad?'error':'';}
  function call(method,path,data){
    var init={method:method,headers:{'X-Bespoke-Secret':cfg.secret}};
    if(data){init.headers['Content-Type']='application/json';init.body=JSON.stringify(data);}
    return fetch(path,init).then(function(r){return r.json().then(function(j){if(!r.ok)throw new Error(j.error||r.status);return j;});});
  }
  function id(){return Math.random().toString(16).slice(2)+Date.now().toString(16);}
  function show(pair){
    current=pair;var p=pair.progress;
    document.getElementById('progress').textContent=(p.round>1?'round '+p.round+': ':'')+p.done+' of '+p.total+
      ' pairs'+(p.round>1?' again':'')+' \u00b7 '+p.votes+' votes by '+pair.voter;
    var pending=0;
    ['left','right'].forEach(function(side){
      var fig=document.getElementById(side);
      ['cand','sample'].forEach(function(kind){
        var img=fig.querySelector('img.'+kind);pending++;
        img.onload=img.onerror=function(){pending--;if(pending===0){body.dataset.state='ready';busy=false;}};
        img.src=kind==='cand'?pair[side].candidate:pair[side].sample;
      });
      fig.querySelectorAll('.marks button').forEach(function(b){b.classList.toggle('on',pair[side].mark===b.dataset.mark);});
    });
  }
  function next(){busy=true;body.dataset.state='loading';
    return call('GET','/api/next?client='+encodeURIComponent(client)).then(show).catch(function(e){body.dataset.state='error';busy=false;say(e.message,true);});}
  function answer(which){
    if(busy||!current)return;busy=true;body.dataset.state='loading';
    call('POST','/api/vote',{token:current.token,answer:which}).then(function(){voted++;body.dataset.voted=voted;
      say({left:'left is better',right:'right is better',same:'the same',neither:'neither usable'}[which]+' \u2014 saved');})
      .catch(function(e){say(e.message,true);}).then(next);
  }
  function undo(){
    if(busy)return;busy=true;body.dataset.state='loading';
    call('POST','/api/undo',{client:client,id:id()}).then(function(r){
      if(r.undone==='vote'){voted=Math.max(0,voted-1);body.dataset.voted=voted;}
      say(r.undone?'took back your last '+r.undone:'nothing to undo');})
      .catch(function(e){say(e.message,true);}).then(next);
  }
  function mark(side,what){
    if(busy||!current)return;
    call('POST','/api/mark',{token:current.token,side:side,mark:what,id:id()}).then(function(){
      current[side].mark=what;
      document.getElementById(side).querySelectorAll('.marks button').forEach(function(b){b.classList.toggle('on',b.dataset.mark===what);});
      say(side+' candidate marked '+what);}).catch(function(e){say(e.message,true);});
  }
  function samples(){body.classList.toggle('samples');}
  var keys={ArrowLeft:function(){answer('left');},'1':function(){answer('left');},ArrowRight:function(){answer('right');},
    '2':function(){answer('right');},ArrowDown:function(){answer('same');},'3':function(){answer('same');},
    s:function(){answer('same');},n:function(){answer('neither');},'0':function(){answer('neither');},
    u:undo,Backspace:undo,v:samples,' ':samples,q:function(){mark('left','keep');},a:function(){mark('left','reject');},
    p:function(){mark('right','keep');},l:function(){mark('right','reject');}};
  document.addEventListener('keydown',function(e){
    if(e.ctrlKey||e.metaKey||e.altKey)return;var f=keys[e.key.length===1?e.key.toLowerCase():e.key];
    if(f){e.preventDefault();f();}
  });
  document.querySelectorAll('[data-answer]').forEach(function(b){b.onclick=function(){answer(b.dataset.answer);};});
  document.querySelectorAll('.marks button').forEach(function(b){b.onclick=function(){mark(b.closest('figure').id,b.dataset.mark);};});
  document.getElementById('undo').onclick=undo;document.getElementById('toggle').onclick=samples;
  body.dataset.voted=0;next();
})();
"""


def _side(side: str) -> str:
    keep, reject = ("Q", "A") if side == "left" else ("P", "L")
    return (f'<figure class="side" id="{side}"><div class="pics">'
            f'<img class="cand" alt="{side} candidate"><img class="sample" alt="{side} sample"></div>'
            f'<div class="marks"><button data-mark="keep">keep <kbd>{keep}</kbd></button>'
            f'<button data-mark="reject">reject <kbd>{reject}</kbd></button></div></figure>')


def page_html(secret: str, voter: str) -> str:
    """The whole page (the session `secret` goes into it, for its API calls)."""
    cfg = json.dumps({"secret": secret}).replace("<", "\\u003c")
    answers = [("left", "left is better", "← or 1"), ("same", "the same", "↓ 3 or S"),
               ("neither", "neither usable", "N or 0"), ("right", "right is better", "→ or 2")]
    buttons = "".join(f'<button data-answer="{a}">{label}<kbd>{key}</kbd></button>' for a, label, key in answers)
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f'<title>bespoke vote</title><style>{CSS}</style></head>'
            f'<body data-state="loading"><header><span id="progress">loading…</span>'
            f'<span>voter {escape(voter)} · which candidate is better?</span></header>'
            f'<main>{_side("left")}{_side("right")}</main>'
            f'<nav class="answers">{buttons}</nav>'
            f'<nav class="tools"><button id="undo">undo <kbd>U</kbd></button>'
            f'<button id="toggle">samples <kbd>V or space</kbd></button></nav>'
            f'<p id="status"></p><script type="application/json" id="cfg">{cfg}</script>'
            f'<script>{JS}</script></body></html>')
